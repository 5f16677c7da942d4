/** Counts of what the client had to do, for the run record and metrics. */
export interface HttpStats {
  requests: number;
  retries: Record<string, number>;
}
