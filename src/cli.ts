import { Command } from 'commander';
import { registerComplianceCommands } from './cli/compliance-commands.js';
import { registerExportCommands } from './cli/export-commands.js';
import { registerSyncCommands } from './cli/sync-commands.js';
import { registerTryCommands } from './cli/try-commands.js';
import { EXIT_CODES, errorMessage } from './errors.js';
import { loadDotenvFile } from './dotenv-file.js';
import { setHeapGrowingFactor } from './heap-growth.js';

try {
  loadDotenvFile();
} catch (err) {
  process.stderr.write(`cpq-sync: ${errorMessage(err)}\n`);
  process.exit(EXIT_CODES.config);
}
// After .env, so that it can set SYNC_HEAP_GROWING_PERCENT; before any command allocates.
setHeapGrowingFactor();

const program = new Command()
  .name('cpq-sync')
  .description('Copies the users of an Oracle CPQ site into Postgres and records what changed.')
  .showHelpAfterError();

registerSyncCommands(program);
registerExportCommands(program);
registerComplianceCommands(program);
registerTryCommands(program);

await program.parseAsync(process.argv);
