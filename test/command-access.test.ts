import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { cliProgram } from '../src/cli/program.js';
import { COMMAND_SCHEMA_ACCESS } from '../src/db/command-access.js';

/*
 * Every command is classed once by what it does with schema cpq (src/db/command-access.ts): the
 * fix a role without USAGE is told lists commands from that table, and test/no-schema-usage.test.ts
 * runs each command of it. A command registered and not classed would be left out of both.
 */

/** The leaf commands under `program`, a subcommand after its parent (`alerts list`). */
function commandNames(program: Command, parents: string[] = []): string[] {
  return program.commands.flatMap((c) => (c.commands.length > 0 ? commandNames(c, [...parents, c.name()]) : [[...parents, c.name()].join(' ')]));
}

describe('command access', () => {
  it('every command the CLI registers is classed by what it does with schema cpq, and the table names no other', () => {
    const registered = commandNames(cliProgram());
    expect(registered).toContain('alerts list');
    expect([...registered].sort()).toEqual(Object.keys(COMMAND_SCHEMA_ACCESS).sort());
  });
});
