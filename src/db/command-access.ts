/**
 * What a command does with schema cpq: only reads it (a login with cpq_reader may run it), writes
 * it (only the role that owns the schema may), tells of both (check), or leaves it alone.
 */
export type SchemaAccess = 'read' | 'write' | 'both' | 'none';

/**
 * Every command of the CLI, by what it does with schema cpq, named once. The fix told to a role
 * without USAGE on the schema lists the commands from here (noSchemaUsageFix), and a test fails
 * when the CLI registers a command this table does not name (test/command-access.test.ts), so a
 * new command is classed here before a message or a test leaves it out.
 */
export const COMMAND_SCHEMA_ACCESS = {
  run: 'write',
  schedule: 'write',
  migrate: 'write',
  forget: 'write',
  'alerts retry': 'write',
  // Its own database (cpq_demo), or the empty one DATABASE_URL names: it migrates and writes there.
  demo: 'write',
  status: 'read',
  snapshot: 'read',
  changes: 'read',
  verify: 'read',
  'alerts list': 'read',
  check: 'both',
  simulate: 'none',
  'alerts test': 'none',
} as const satisfies Record<string, SchemaAccess>;

/** A command's name as the table writes it: a subcommand after its parent (`alerts list`). */
export type CommandName = keyof typeof COMMAND_SCHEMA_ACCESS;

/** The commands whose access is `access`. */
export type CommandsThat<A extends SchemaAccess> = { [C in CommandName]: (typeof COMMAND_SCHEMA_ACCESS)[C] extends A ? C : never }[CommandName];

/** The commands whose access is `access`, in the table's order. */
export function commandsThat<A extends SchemaAccess>(access: A): CommandsThat<A>[] {
  return (Object.keys(COMMAND_SCHEMA_ACCESS) as CommandName[]).filter((c): c is CommandsThat<A> => COMMAND_SCHEMA_ACCESS[c] === access);
}
