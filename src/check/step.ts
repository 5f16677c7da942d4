/** How one step of `cpq-sync check` went. `warn` passes: the setup works, with something to know. */
export type StepStatus = 'pass' | 'warn' | 'fail' | 'skip';

export interface StepResult {
  /** What was checked: `configuration`, `host`, `credentials`, `path prefix`, ... */
  step: string;
  status: StepStatus;
  /** What was found, in one line. */
  detail: string;
  /** For a failure (or a warning): what to change. */
  fix?: string;
}

export const pass = (step: string, detail: string): StepResult => ({ step, status: 'pass', detail });
export const warn = (step: string, detail: string, fix?: string): StepResult => ({ step, status: 'warn', detail, ...(fix ? { fix } : {}) });
export const fail = (step: string, detail: string, fix?: string): StepResult => ({ step, status: 'fail', detail, ...(fix ? { fix } : {}) });
export const skip = (step: string, detail: string): StepResult => ({ step, status: 'skip', detail });
