/** Oracle CPQ user REST API simulator: a real HTTP server for tests, the demo and benchmarks. */
export { CpqSimulator, type RequestRecord, type SimulatorOptions } from './server.js';
export type { SimulatorAuth } from './auth.js';
export type { Fault, FaultMatch } from './faults.js';
export type { MutationOptions } from './store.js';
export type { AccessPermission, CompanyInfo, Group, UserRecord } from './data.js';
export { DATA_ANCHOR_MS, HOST_COMPANY } from './data.js';
export { CASE_VARIANTS } from './drift.js';
export { matchesFilter, parseFilter, type Condition } from './filter.js';
export { parseOrderBy, type SortKey } from './orderby.js';
export { QueryError } from './query.js';
export { parseRelaxedJson } from './relaxed-json.js';
export { RawJson, stringifyExact } from './json.js';
export type { ZipEntryFormat, ZipExportFault, ZipExportOptions } from './zip-export.js';
