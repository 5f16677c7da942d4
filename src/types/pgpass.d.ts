// pgpass ships no types: the calls this project makes of it.
declare module 'pgpass/lib/helper.js' {
  import type { Stats } from 'node:fs';
  import type { Readable } from 'node:stream';
  interface PgpassTarget {
    host?: string;
    port?: number | string;
    database?: string;
    user?: string;
  }
  const helper: {
    /** Whether the file may be read: a plain file only its owner can read (else a warning on stderr), and PGPASSWORD unset. */
    usePgPass(stats: Stats, fileName: string): boolean;
    /** The password of the first line of `lines` that matches `target`, or undefined. */
    getPassword(target: PgpassTarget, lines: Readable, callback: (password: string | undefined) => void): void;
  };
  export default helper;
}
