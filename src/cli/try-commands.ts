import { type Command, Option } from 'commander';
import { ConfigError, secret, withoutSiteSettings } from '../config.js';
import { durationSetting, LONGEST_TIMER_MS, parseDuration } from '../config-env.js';
import { errorCode, errorMessage } from '../errors.js';
import { command } from './command.js';

/** The requests for pages of users: of a company (JSON or zip), of integration users, of all users (v19). */
const USER_PAGES = /\/rest\/v\d+\/(?:companies\/[^/]+\/users|integrationUsers|users)$/;

/** The commands for trying the tool without a CPQ site: a simulated site (simulate) and the demo. */
export function registerTryCommands(program: Command): void {
  program
    .command('simulate')
    .description('serve a simulated CPQ site over HTTP (for trying the tool, tests and benchmarks)')
    .addOption(new Option('--port <port>', 'TCP port').default('8080'))
    .addOption(new Option('--host <host>', 'address to listen on').default('127.0.0.1'))
    .addOption(new Option('--users <n>', 'users per company').default('1000'))
    .addOption(new Option('--partners <n>', 'partner companies besides the host').default('2'))
    .addOption(new Option('--integration-users <n>', 'integration users').default('5'))
    .addOption(new Option('--seed <n>', 'data seed').default('1'))
    .addOption(new Option('--prefix <prefix>', 'path prefix: "" (classic) or /cpq (Fusion)').default('/cpq'))
    .addOption(new Option('--sites <n>', 'serve this many sites, on --port and the ports after it (different data each)').default('1'))
    .addOption(
      new Option('--latency <duration>', 'each answer takes at least this long (250ms, 2s; a bare number is seconds), a --fail-rate 503 excepted').default('0'),
    )
    .addOption(
      new Option(
        '--fail-rate <share>',
        'this share (0 to 1) of the requests for pages of users (JSON, zip exports, integration users) answered 503, drawn by --seed',
      ).default('0'),
    )
    .addOption(
      new Option(
        '--password <secret>',
        'require Basic auth with this password (any user name), else 401; other local users can read a command line: a test password only, or --password-file',
      ),
    )
    .addOption(new Option('--password-file <file>', 'as --password, the password read from this file'))
    .action((opts: Record<string, string>) =>
      command(async (_config, log) => {
        const whole = (name: string) => {
          const value = Number(opts[name]);
          if (!Number.isInteger(value) || value < 0) throw new ConfigError(`--${name} must be a whole number, got "${opts[name]}"`);
          return value;
        };
        if (opts.prefix !== '' && opts.prefix !== '/cpq') throw new ConfigError('--prefix must be "" or /cpq');
        const count = whole('sites');
        if (count < 1 || count > 50) throw new ConfigError(`--sites must be from 1 to 50, got "${opts.sites}"`);
        const latencyMs = parseDuration(String(opts.latency));
        if (latencyMs === undefined || latencyMs > LONGEST_TIMER_MS)
          throw new ConfigError(`--latency must be a duration such as 250ms or 2s, got "${opts.latency}"`);
        const failRate = String(opts.failRate).trim() === '' ? NaN : Number(opts.failRate);
        if (!(failRate >= 0 && failRate <= 1)) throw new ConfigError(`--fail-rate must be a number from 0 to 1, got "${opts.failRate}"`);
        // As CPQ_PASSWORD and CPQ_PASSWORD_FILE are read: the file keeps the password off the command line, which `ps` shows.
        const password = secret({ '--password': opts.password, '--password-file': opts.passwordFile }, '--password', '--password-file');
        if (password === undefined || password === '') {
          if (opts.passwordFile !== undefined) throw new ConfigError('--password-file: the file it names is empty: put the password in it');
          if (opts.password !== undefined) throw new ConfigError('--password must not be empty');
        }
        const { CpqSimulator } = await import('../simulator/index.js');
        const simulators: InstanceType<typeof CpqSimulator>[] = [];
        const sites: { name: string; baseUrl: string; pathPrefix: string; companies: string }[] = [];
        try {
          for (let i = 0; i < count; i++) {
            const simulator = new CpqSimulator({
              seed: whole('seed') + i,
              usersPerCompany: whole('users'),
              partnerCompanies: whole('partners'),
              integrationUsers: whole('integrationUsers'),
              pathPrefix: opts.prefix,
              zipExport: {},
              latency: { fixedMs: latencyMs },
              ...(password ? { auth: { basic: { password } } } : {}),
            });
            if (failRate > 0) simulator.addFault({ match: { method: 'GET', path: USER_PAGES }, status: 503, times: Infinity, share: failRate });
            simulators.push(simulator);
            const port = whole('port') + i;
            const url = await simulator.start(port, opts.host).catch((err: unknown) => {
              // A port taken or an address not this machine's is the command line's mistake: exit code 2, one line.
              const code = errorCode(err);
              const hint = code === 'EADDRINUSE' ? ': another process listens there; choose another --port' : '';
              throw new ConfigError(`--port/--host: cannot listen on ${opts.host} port ${port} (${code ?? errorMessage(err)})${hint}`);
            });
            sites.push({ name: count === 1 ? 'default' : `site${i + 1}`, baseUrl: url, pathPrefix: opts.prefix, companies: '*' });
            // The settings, never the password itself.
            const login = password ? 'Basic, any user name, the password given' : 'any credentials, or none';
            log.info(
              { url, pathPrefix: opts.prefix, companies: simulator.companyLogins(), latency: durationSetting(latencyMs), failRate, login },
              'CPQ simulator listening (Ctrl-C to stop)',
            );
          }
          // Several sites: what CPQ_SITES_FILE would hold to sync them all.
          if (count > 1) log.info({ sites }, 'a CPQ_SITES_FILE for these sites (JSON)');
          await new Promise<void>((resolve) => {
            process.once('SIGINT', resolve);
            process.once('SIGTERM', resolve);
          });
        } finally {
          for (const simulator of simulators) await simulator.stop();
        }
      }),
    );
  program
    .command('demo')
    .description('two simulated sites + embedded Postgres: a full sync, some edits, an incremental sync, a summary')
    .action(() =>
      command(
        async (config, log) => {
          const { runDemo } = await import('../demo.js');
          await runDemo(config, log);
        },
        { env: withoutSiteSettings },
      ),
    );
}
