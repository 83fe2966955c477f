// `import { runWorker } from 'herald/worker'`: write a Herald worker in a few lines (docs/WORKERS.md).
export { runWorker, LeaseEndedError } from './run-worker.js';
export type { Handler, JobContext, LogLevel, RunningWorker, WorkerOptions } from './run-worker.js';
export { JobError } from './protocol.js';
export type { HandlerResult, Job, JobKind, Output } from './protocol.js';
export { HeraldHttpError, HeraldRequestError, WorkerClient } from './client.js';
export type { UploadBody } from './client.js';
