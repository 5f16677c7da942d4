// Runs the built CLI in this process and, as it exits, reports its peak RSS on stderr for the
// benchmark driver (the CLI ends with process.exit, so 'exit' is the last moment to measure).
process.on('exit', () => {
  process.stderr.write(`\nBENCH_MAX_RSS_KB=${process.resourceUsage().maxRSS}\n`);
});
await import('../bin/cpq-sync.js');
