/**
 * Failure classes a run can end with. Each maps to a documented exit code of `cpq-sync run`,
 * and each message is one line that names what was wrong and where, never a credential.
 */
export type FailureKind = 'config' | 'source' | 'auth' | 'data' | 'database' | 'lock' | 'interrupted' | 'internal';

export const EXIT_CODES: Record<FailureKind, number> = {
  internal: 1,
  config: 2,
  source: 3,
  auth: 4,
  data: 5,
  database: 6,
  lock: 7,
  interrupted: 130,
};

export class SyncError extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
  ) {
    super(message);
    this.name = 'SyncError';
  }
}

/** One line, whatever the error was. */
export function oneLine(message: string): string {
  return message.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}
