export { RaftDisk, type OpenResult, type RaftDiskOptions } from './disk.js';
export { measureFdatasync } from './fsyncprobe.js';
