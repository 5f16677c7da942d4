import pg from 'pg';

export interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Join Filter'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  Plans?: PlanNode[];
}

/** Every node of a plan, depth first. */
export function planNodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(planNodes)];
}

/**
 * Runs `read` on a pool of one connection to `url` into which auto_explain was loaded, and returns
 * the plan of each statement it ran (those inside functions too) with the text of that statement
 * and the planner settings it ran with that differ from Postgres' defaults (enable_nestloop, jit,
 * ...); with `analyze`, each node's actual rows and loops too.
 */
export async function plansOf(
  url: string,
  read: (pool: pg.Pool) => Promise<unknown>,
  { analyze = false } = {},
): Promise<{ query: string; plan: PlanNode; settings: Record<string, string> }[]> {
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  const plans: { query: string; plan: PlanNode; settings: Record<string, string> }[] = [];
  try {
    const client = await pool.connect();
    client.on('notice', (n: { message?: string }) => {
      const text = n.message ?? '';
      const json = text.indexOf('{');
      if (!text.startsWith('duration') || json < 0) return;
      const entry = JSON.parse(text.slice(json)) as { 'Query Text': string; Plan: PlanNode; Settings?: Record<string, string> };
      plans.push({ query: entry['Query Text'], plan: entry.Plan, settings: entry.Settings ?? {} });
    });
    await client.query(`LOAD 'auto_explain'`);
    const settings = [
      'log_min_duration = 0',
      'log_level = notice',
      'log_format = json',
      'log_nested_statements = on',
      'log_settings = on',
      `log_analyze = ${analyze ? 'on' : 'off'}`,
    ];
    for (const setting of settings) await client.query(`SET auto_explain.${setting}`);
    client.release();
    await read(pool);
  } finally {
    await pool.end();
  }
  return plans;
}
