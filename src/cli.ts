import { cliProgram } from './cli/program.js';
import { ConfigError } from './config.js';
import { EXIT_CODES, errorMessage, oneLine } from './errors.js';
import { loadDotenvFile } from './dotenv-file.js';
import { setHeapGrowingFactor } from './heap-growth.js';

try {
  loadDotenvFile();
} catch (err) {
  // A path or encoding from the environment may hold a line break or an escape sequence: one printable line.
  // Said as every other configuration mistake is: "invalid configuration: …".
  const text = err instanceof ConfigError ? ConfigError.listing(err.problems).message : errorMessage(err);
  process.stderr.write(`cpq-sync: ${oneLine(text)}\n`);
  process.exit(EXIT_CODES.config);
}
// The reader of standard output gone (`cpq-sync run | head`): every later write fails with EPIPE,
// which, unhandled, ended the process with a stack trace. A run stops as on SIGPIPE
// (src/worker/shutdown.ts), an export fails with one line (src/output.ts); before and after
// those, what is written is lost, and the command goes on.
process.stdout.on('error', () => undefined);
// After .env, so that it can set SYNC_HEAP_GROWING_PERCENT; before any command allocates.
setHeapGrowingFactor();

const program = cliProgram();

// `help NAME` of no command gets the one line `NAME` itself gets, not commander's whole help as
// an error; `help help` (commander's own error) is the help `help` prints. An option after help
// (`help --help`) is commander's to read.
const [first, second] = process.argv.slice(2);
if (first === 'help' && second === 'help') program.help();
if (first === 'help' && second && !second.startsWith('-') && !program.commands.some((c) => c.name() === second || c.aliases().includes(second))) {
  program.error(`unknown command '${second}'`);
}

await program.parseAsync(process.argv);
