import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/** A built module (under dist/, which `npm test` builds first), as a quoted URL for a script's import. */
export const builtModule = (path: string): string => JSON.stringify(new URL(`../../dist/${path}`, import.meta.url).href);

/**
 * Runs `script` (an ES module's text) in a Node process of its own whose V8 heap is `heapMb`
 * (with no environment), and returns what it printed: what a hostile input would make the code
 * hold shows as that process running out of heap, not as this one growing.
 */
export async function runWithHeap(heapMb: number, script: string, args: string[] = []): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [`--max-old-space-size=${heapMb}`, '--input-type=module', '-e', script, ...args], {
    env: {},
    maxBuffer: 1 << 20,
  });
  return stdout;
}
