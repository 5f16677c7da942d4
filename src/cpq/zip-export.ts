import type { CpqConfig } from '../config.js';
import { SyncError } from '../errors.js';
import type { CpqHttpClient } from './http-client.js';
import type { Page } from './paging.js';

/**
 * The users of one company from CPQ's zip export (`Accept: application/zip`), as pages of raw
 * records shaped like the JSON path's, so both paths share normalization and loading.
 */
// eslint-disable-next-line require-yield
export async function* zipUserPages(_client: CpqHttpClient, _config: CpqConfig, company: string, _signal?: AbortSignal): AsyncGenerator<Page> {
  throw new SyncError('config', `zip export of ${company}: not implemented yet`);
}
