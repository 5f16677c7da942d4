import { existsSync, lstatSync, readlinkSync, type Stats } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute } from 'node:path';
import dotenv from 'dotenv';
import { ConfigError, type AppConfig } from './config.js';
import { flagValue } from './config-env.js';
import { ConfigFileRefused, foreignWriterRefusal, othersMayRead, readOwnConfigFile } from './foreign-writer.js';
import { errorCode } from './errors.js';
import { parseConnectionUrl } from './connection-url.js';

/** What the last loadDotenvFile found wrong but not bad enough to refuse. */
const warnings: string[] = [];

/** The configuration with the .env file's warnings before its own: every command logs them, `check` shows them. */
export function withDotenvWarnings(config: AppConfig): AppConfig {
  return warnings.length === 0 ? config : { ...config, warnings: [...warnings, ...config.warnings] };
}

/** A name a credential goes by (CPQ_PASSWORD, PGPASSWORD; a sites file names its own as it likes: `password: ${EMEA_PASSWORD}`). */
const SECRET_NAME = /PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_KEY|CREDENTIAL/i;

/** Whether a .env variable holds a credential: by its name (not a file's path or a URL named so), or a URL with a password in it (DATABASE_URL's). */
function holdsSecret(name: string, value: string): boolean {
  if (value === '') return false;
  // A webhook URL is a credential (Slack's hold their token), whatever it holds.
  if (name === 'ALERT_WEBHOOK_URL') return true;
  if (SECRET_NAME.test(name) && !/_(FILE|URL)$/i.test(name)) return true;
  const url = parseConnectionUrl(value);
  return url !== undefined && (url.password !== '' || url.searchParams.has('password'));
}

/**
 * Reads `.env` in the working directory (or the file DOTENV_CONFIG_PATH names) into the
 * environment, variables already set winning (unless DOTENV_CONFIG_OVERRIDE=true, 1, yes or on), unless another
 * local user could have written it: in a folder others can write to (a shared working directory,
 * /tmp), someone else's `.env` would set what the operator left unset, DATABASE_URL among it
 * (every synced user's personal data to their database). Refused, not skipped: the operator meant
 * some `.env` to apply.
 *
 * What is checked is the file read (readOwnConfigFile).
 */
export function loadDotenvFile(env: NodeJS.ProcessEnv = process.env): void {
  warnings.length = 0;
  const named = env.DOTENV_CONFIG_PATH ? env.DOTENV_CONFIG_PATH.replace(/^~(?=\/|$)/, homedir()) : undefined;
  const path = named ?? '.env';
  // dotenv/config read an encrypted .env.vault beside it when DOTENV_KEY was set; this does not.
  if (env.DOTENV_KEY && existsSync(`${path}.vault`)) {
    throw new ConfigError(`DOTENV_KEY: ${path}.vault is encrypted, and encrypted files are not read; decrypt it to ${path}`);
  }
  const encoding = env.DOTENV_CONFIG_ENCODING ?? 'utf8';
  if (!Buffer.isEncoding(encoding)) throw new ConfigError(`DOTENV_CONFIG_ENCODING: "${encoding}" is not an encoding`);
  // A relative name says which folder: the working directory is not always the one meant.
  const where = isAbsolute(path) ? path : `${path} (in ${process.cwd()})`;
  let entry: Stats;
  try {
    entry = lstatSync(path);
  } catch (err) {
    if (named === undefined) return; // none
    const code = errorCode(err);
    throw new ConfigError(`DOTENV_CONFIG_PATH: ${code === 'ENOENT' ? `${where} does not exist` : `cannot read ${where} (${code ?? 'error'})`}`);
  }
  let read;
  try {
    read = readOwnConfigFile(path, {
      skip: (file) => {
        // A folder named .env (a Python virtual environment's usual name) is no configuration; a
        // FIFO, socket or device under that name is none anyone wrote on purpose, and is not read.
        if (named === undefined && !file.isFile() && !file.isDirectory()) throw new ConfigError(`${path} is not a file`);
        return file.isDirectory() && named === undefined;
      },
    });
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    if (err instanceof ConfigFileRefused && err.reason === 'foreign-writer') {
      throw new ConfigError(`${path}${err.problem}${foreignWriterRefusal('read it', 'sets the configuration (DATABASE_URL among it)')}`);
    }
    if (err instanceof ConfigFileRefused) throw new ConfigError(`${path}${err.problem}`);
    const code = errorCode(err);
    // A link left behind when its target moved (a secrets mount not there yet, a release folder removed):
    // "ENOENT" of a name that is there would send the operator looking for the wrong file (review EL).
    if (code === 'ENOENT' && entry.isSymbolicLink()) {
      throw new ConfigError(`${named === undefined ? '' : 'DOTENV_CONFIG_PATH: '}${where} is a link to ${readlinkSync(path)}, which does not exist`);
    }
    // Only a named one: a folder named .env is passed over (above).
    if (code === 'EISDIR') throw new ConfigError(`DOTENV_CONFIG_PATH: ${where} is a folder, not a file`);
    // A service account running where the operator made the file (review EG: it named no fix).
    const fix = code === 'EACCES' || code === 'EPERM' ? '; run cpq-sync as the account that made it, or chown the file to this account' : '';
    throw new ConfigError(`${where}: cannot be opened (${code ?? 'error'})${fix}`);
  }
  if (read === undefined) return;
  const { bytes, file } = read;
  // As every yes/no setting reads; any other text leaves the environment winning.
  const override = flagValue(env.DOTENV_CONFIG_OVERRIDE ?? '') === true;
  const values = dotenv.parse(bytes.toString(encoding));
  const secrets = Object.keys(values).filter((name) => holdsSecret(name, values[name]!));
  // Readable by another user, a file holding a secret gives it away: said at every start (the
  // default umask makes files so), as for a sites file, not refused.
  if (secrets.length > 0 && file.isFile() && othersMayRead(file)) {
    warnings.push(
      `${path} holds ${secrets.join(', ')} and other users can read it (mode ${(file.mode & 0o777).toString(8)}): chmod 600 it, or keep the secret in a file of its own (CPQ_PASSWORD_FILE and the like)`,
    );
  }
  dotenv.populate(env, values, { override });
}
