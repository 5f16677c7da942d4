import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

export interface StreamCursor {
  stream: string;
  /** The newest dateModified read by the stream's last complete read. */
  cursor: Date | null;
  last_full_sync_at: Date | null;
}

/** The stored cursor of every stream of `site`, by stream name. */
export async function readCursors(on: Queryable, site: string): Promise<Map<string, StreamCursor>> {
  const rows = await runCompiled(
    on,
    queryBuilder.selectFrom('cpq.sync_state').select(['stream', 'cursor', 'last_full_sync_at']).where('site', '=', site).compile(),
  );
  return new Map(rows.map((s) => [s.stream, s] as const));
}
