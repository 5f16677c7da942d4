export interface FaultMatch {
  method?: string;
  /** A string must equal the request pathname exactly. */
  path?: RegExp | string;
  /** Every listed parameter must be present with exactly this value. */
  query?: Record<string, string>;
}

export interface Fault {
  match?: FaultMatch;
  /** How many matching requests it hits; default 1; Infinity allowed. */
  times?: number;
  /**
   * The share of matching requests it hits, from 0 to 1, drawn for each by the simulator's seeded
   * generator (the same seed, the same draws, in the order requests come); default 1, every one. A
   * request it lets by goes to the next matching fault, or is answered as without it.
   */
  share?: number;
  status?: number;
  headers?: Record<string, string>;
  /** Raw body to send (HTML, truncated JSON, ...). */
  body?: string;
  /**
   * reset: send headers and part of the body, then destroy the socket.
   * stall: never respond (until stop()).
   */
  action?: 'reset' | 'stall';
}

export interface RequestFacts {
  method: string;
  path: string;
  query: Record<string, string>;
}

function matches(match: FaultMatch | undefined, request: RequestFacts): boolean {
  if (!match) return true;
  if (match.method !== undefined && match.method.toUpperCase() !== request.method.toUpperCase()) return false;
  if (typeof match.path === 'string' && match.path !== request.path) return false;
  if (match.path instanceof RegExp) {
    match.path.lastIndex = 0; // a /g or /y pattern would otherwise remember the previous test
    if (!match.path.test(request.path)) return false;
  }
  if (match.query) {
    for (const [name, value] of Object.entries(match.query)) if (request.query[name] !== value) return false;
  }
  return true;
}

/** Faults in the order added; the first matching one with hits left (and drawn, for a share) applies. */
export class FaultQueue {
  private faults: Array<{ fault: Fault; remaining: number }> = [];

  /** `draw`: a number in [0, 1) for each matching request of a fault with a share. */
  constructor(private readonly draw: () => number) {}

  add(fault: Fault): void {
    const share = fault.share ?? 1;
    if (!(share >= 0 && share <= 1)) throw new Error(`a fault's share must be from 0 to 1, got ${fault.share}`);
    this.faults.push({ fault, remaining: fault.times ?? 1 });
  }

  clear(): void {
    this.faults = [];
  }

  take(request: RequestFacts): Fault | undefined {
    const entry = this.faults.find((f) => f.remaining > 0 && matches(f.fault.match, request) && (f.fault.share === undefined || this.draw() < f.fault.share));
    if (!entry) return undefined;
    entry.remaining--;
    if (entry.remaining <= 0) this.faults = this.faults.filter((f) => f !== entry);
    return entry.fault;
  }
}
