import 'dotenv/config';
import { Command } from 'commander';
import { registerComplianceCommands } from './cli/compliance-commands.js';
import { registerExportCommands } from './cli/export-commands.js';
import { registerSyncCommands } from './cli/sync-commands.js';
import { registerTryCommands } from './cli/try-commands.js';
import { setHeapGrowingFactor } from './heap-growth.js';

// After dotenv, so that a .env file can set SYNC_HEAP_GROWING_PERCENT; before any command allocates.
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
