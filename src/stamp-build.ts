import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { packageVersion, type BuiltFrom } from './build.js';
import { checkoutCommit } from './checkout-commit.js';

/*
 * The last step of `npm run build` and of `prepare` (which `npm ci` runs), after tsc: writes what
 * dist/ was compiled from over the BUILT_FROM line of dist/build.js (see src/build.ts). The
 * commit is that of the checkout this package is, read from the package's own folder, not the
 * working directory; none for a copy without .git, or a git worktree (see checkoutCommit).
 */
const packageFolder = fileURLToPath(new URL('..', import.meta.url));
const builtModule = fileURLToPath(new URL('build.js', import.meta.url));
const builtFrom: BuiltFrom = { version: packageVersion(), commit: checkoutCommit(packageFolder) ?? null };

const code = readFileSync(builtModule, 'utf8');
// As tsc writes it (null), or as an earlier stamp left it.
const line = /^const BUILT_FROM = .*;$/gm;
const found = code.match(line)?.length ?? 0;
if (found !== 1) throw new Error(`${builtModule}: ${String(found)} lines \`const BUILT_FROM = …;\` where one was expected; not stamped`);
writeFileSync(builtModule, code.replace(line, `const BUILT_FROM = ${JSON.stringify(builtFrom)};`));
