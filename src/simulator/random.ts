/** Small deterministic PRNG helpers: the simulator must never depend on Math.random. */

/** 32-bit FNV-1a over the parts, joined by a separator that cannot occur in logins. */
function hashParts(...parts: ReadonlyArray<string | number>): number {
  let hash = 0x811c9dc5;
  const text = parts.join('\u0001');
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return finalizeHash(hash);
}

/** murmur3 finalizer: FNV alone leaves low bits poorly mixed for short, similar inputs. */
function finalizeHash(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A uniform number in [0, 1) derived from the parts. */
export function hashUnit(...parts: ReadonlyArray<string | number>): number {
  return hashParts(...parts) / 4294967296;
}

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const HEX = '0123456789abcdef';

/** mulberry32: tiny, fast and good enough for test data. */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  static forParts(...parts: ReadonlyArray<string | number>): SeededRandom {
    return new SeededRandom(hashParts(...parts));
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [min, max], both inclusive. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }

  /** k distinct items, in pool order shuffled by the generator. */
  sample<T>(items: readonly T[], k: number): T[] {
    const count = Math.min(k, items.length);
    if (count * 4 <= items.length) {
      // Small draws from a large pool (every user's groups): no copy of the pool, and an
      // exact-size result (push-grown arrays keep spare capacity, x1M users).
      const picked = new Array<T>(count);
      let filled = 0;
      while (filled < count) {
        const item = items[Math.floor(this.next() * items.length)] as T;
        if (!picked.slice(0, filled).includes(item)) picked[filled++] = item;
      }
      return picked;
    }
    const pool = items.slice();
    for (let i = 0; i < count; i++) {
      const j = i + Math.floor(this.next() * (pool.length - i));
      const tmp = pool[i] as T;
      pool[i] = pool[j] as T;
      pool[j] = tmp;
    }
    return pool.slice(0, count);
  }

  digits(length: number): string {
    let out = '';
    for (let i = 0; i < length; i++) out += String(Math.floor(this.next() * 10));
    return out;
  }

  hex(length: number): string {
    let out = '';
    for (let i = 0; i < length; i++) out += HEX[Math.floor(this.next() * 16)]!;
    return out;
  }

  alphanumeric(length: number): string {
    let out = '';
    for (let i = 0; i < length; i++) out += ALPHANUMERIC[Math.floor(this.next() * ALPHANUMERIC.length)]!;
    return out;
  }
}

/** Fixed-width base62, used to make identifiers unique by construction. */
export function toBase62(value: number, width: number): string {
  let out = '';
  let rest = value;
  do {
    out = ALPHANUMERIC[rest % 62]! + out;
    rest = Math.floor(rest / 62);
  } while (rest > 0);
  return out.padStart(width, ALPHANUMERIC[0]);
}
