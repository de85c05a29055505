// The scheduler's public surface: one pure pass plus the constraint parser the control API reuses.
export { schedule } from './scheduler.js';
export {
  ConstraintError,
  PreferenceError,
  matchConstraint,
  normalizeArch,
  parseConstraint,
  parseConstraints,
  parsePreference,
  type Attribute,
  type Constraint,
  type Operator,
} from './constraint.js';
export type {
  NodeAvailability,
  NodeRole,
  PendingTask,
  PlacementPreference,
  Platform,
  Resources,
  ScheduleResult,
  SchedulerNode,
} from './types.js';
