export { GrpcTransport, type TransportOptions, type TransportCredentials } from './transport.js';
export { raftTransportService, STREAM_PATH, INSTALL_SNAPSHOT_PATH } from './service.js';
