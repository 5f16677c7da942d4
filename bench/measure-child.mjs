// Runs the built CLI in this process and, as it exits, reports its peak RSS on stderr for the
// benchmark driver (the CLI ends with process.exit, so 'exit' is the last moment to measure),
// and the CPU time it used (user and system), which a busy machine changes less than wall time.
//
// The peak is VmHWM from /proc/self/status: getrusage's maxRSS (process.resourceUsage) also
// counts what the spawning process had resident when it forked, which Linux carries across exec,
// so it would report the benchmark driver's memory (its simulator and page cache) as ours.
// What made up the peak (V8 heap, buffers outside it) is sampled every 100 ms: the sample with
// the largest RSS is reported with it.
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

let largest = process.memoryUsage();
setInterval(() => {
  const sample = process.memoryUsage();
  if (sample.rss > largest.rss) largest = sample;
}, 100).unref();

process.on('exit', () => {
  const mb = (bytes) => Math.round(bytes / 2 ** 20);
  const parts = `heap ${mb(largest.heapTotal)} (used ${mb(largest.heapUsed)}), buffers ${mb(largest.arrayBuffers)}, other external ${mb(largest.external - largest.arrayBuffers)}`;
  const { user, system } = process.cpuUsage();
  process.stderr.write(
    `\nBENCH_MAX_RSS_KB=${peakRssKb()}\nBENCH_RSS_PARTS=${parts} MB at the largest sampled RSS (${mb(largest.rss)} MB)\nBENCH_CPU_S=${(user + system) / 1e6}\n`,
  );
});
await import('../bin/cpq-sync.js');
