/** Whether `a` becomes `b` by at most `max` one-character insertions, deletions or replacements. */
function editDistanceAtMost(a: string, b: string, max: number): boolean {
  if (Math.abs(a.length - b.length) > max || a.length > 64) return false;
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length]! <= max;
}

/**
 * The one of `known` that `name` is likeliest a typo of (the fewest characters off, at most two,
 * case and a plural's ending aside: CPQ_COMPANY is three characters off CPQ_COMPANIES), if any.
 */
export function nearMiss(name: string, known: readonly string[]): string | undefined {
  const stem = singular(name.toLowerCase());
  for (const distance of [0, 1, 2]) {
    const near = known.find((k) => editDistanceAtMost(stem, singular(k.toLowerCase()), distance));
    if (near !== undefined) return near;
  }
  return undefined;
}

/** A name's last word without its plural's ending (companies, company: company; hours: hour). */
function singular(name: string): string {
  return name.replace(/ies$/, 'y').replace(/([^s])s$/, '$1');
}
