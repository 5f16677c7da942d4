import { readFileSync } from 'node:fs';

/** What a build was compiled from: package.json's version, and the commit of the git checkout it was built in (null outside one). */
export interface BuiltFrom {
  version: string;
  commit: string | null;
}

/**
 * What `npm run build` compiled this code from: src/stamp-build.ts writes it over this line of
 * dist/build.js once tsc is done. Stamped when built rather than read from .git when run: `git
 * pull` changes .git and package.json at once and leaves dist/ as it was until the next build, and
 * what is printed must name the code that runs. Null in code no build stamped (the tests import
 * src/; a bare `tsc` writes this line afresh): package.json's version alone, then.
 */
const BUILT_FROM = null as BuiltFrom | null;

/** package.json's version: the one beside src/ and dist/ alike. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/** `0.1.0 (commit 9138b1b)`, or the version alone for a build made outside a git checkout. */
export function buildName(built: BuiltFrom): string {
  return built.commit === null ? built.version : `${built.version} (commit ${built.commit.slice(0, 7)})`;
}

/**
 * The build this process runs, as `--version` prints it and each run logs it (`build` in its
 * 'sync run started' line). Fixed as the process starts (src/cli/program.ts imports it): a worker
 * left running through an upgrade, which loads later modules from the new dist/, names the build
 * it started with.
 */
export const BUILD = buildName(BUILT_FROM ?? { version: packageVersion(), commit: null });
