// Runs the built CLI in this process and, as it exits, reports its peak RSS on stderr for the
// benchmark driver (the CLI ends with process.exit, so 'exit' is the last moment to measure).
//
// The peak is VmHWM from /proc/self/status: getrusage's maxRSS (process.resourceUsage) also
// counts what the spawning process had resident when it forked, which Linux carries across exec,
// so it would report the benchmark driver's memory (its simulator and page cache) as ours.
import { readFileSync } from 'node:fs';

function peakRssKb() {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (match) return Number(match[1]);
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS;
}

process.on('exit', () => {
  process.stderr.write(`\nBENCH_MAX_RSS_KB=${peakRssKb()}\n`);
});
await import('../bin/cpq-sync.js');
