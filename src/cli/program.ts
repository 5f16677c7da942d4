import { Command } from 'commander';
import { BUILD } from '../build.js';
import { EXIT_CODES, oneLine } from '../errors.js';
import { registerComplianceCommands } from './compliance-commands.js';
import { registerReadCommands } from './read-commands.js';
import { registerSyncCommands } from './sync-commands.js';
import { registerTryCommands } from './try-commands.js';

/**
 * The command line with every command registered, not yet parsed (src/cli.ts parses it; a test
 * lists its commands against src/db/command-access.ts).
 */
export function cliProgram(): Command {
  // A mistyped command line (an unknown option, a missing argument, a bad choice) is bad
  // configuration, exit code 2, said in one line: commander's default is exit code 1, and the
  // whole help after the error. Set before the commands are added, which inherit it.
  const program = new Command()
    .name('cpq-sync')
    .description('Copies the users of an Oracle CPQ site into Postgres and records what changed.')
    // The build an operator reports: the release, and the commit it was built from.
    .version(BUILD, '-V, --version', 'prints the version, and the commit it was built from')
    .configureOutput({ outputError: (text, write) => write(`cpq-sync: ${oneLine(text.replace(/^error: /, ''))} (see --help)\n`) })
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : EXIT_CODES.config));

  registerSyncCommands(program);
  registerReadCommands(program);
  registerComplianceCommands(program);
  registerTryCommands(program);
  return program;
}
