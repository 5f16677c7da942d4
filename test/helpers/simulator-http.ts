import { isSafeNumber, LosslessNumber, parse } from 'lossless-json';
import { CpqSimulator, type SimulatorOptions } from '../../src/simulator/index.js';

/* HTTP against a simulator, for the simulator's own tests. */

export type Json = Record<string, unknown>;

export interface Fetched {
  status: number;
  headers: Headers;
  text: string;
  body: Json;
}

export async function get(url: string, init?: RequestInit): Promise<Fetched> {
  const response = await fetch(url, init);
  const text = await response.text();
  let body: Json = {};
  try {
    // exact for int64, plain numbers for everything that fits
    body = parse(text, null, (digits) => (isSafeNumber(digits) ? Number(digits) : new LosslessNumber(digits))) as Json;
  } catch {
    // non-JSON bodies are checked through `text`
  }
  return { status: response.status, headers: response.headers, text, body };
}

export function items(fetched: Fetched): Json[] {
  return fetched.body.items as Json[];
}

export function logins(fetched: Fetched): string[] {
  return items(fetched).map((item) => item.login as string);
}

export function q(filter: string): string {
  return `q=${encodeURIComponent(filter)}`;
}

export function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

export async function withSimulator<T>(options: SimulatorOptions, run: (sim: CpqSimulator, base: string) => Promise<T>): Promise<T> {
  const sim = new CpqSimulator(options);
  const base = await sim.start();
  try {
    return await run(sim, base);
  } finally {
    await sim.stop();
  }
}
