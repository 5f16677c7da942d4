import fc from 'fast-check';
import { afterEach } from 'vitest';
import { casesSettled, trackRunningCases } from '../properties/running-cases.js';

// Every async property of every test file: a case its time limit gave up on ends before the next
// test starts. Registered first, this hook runs after the file's own afterEach hooks (vitest runs
// them last first): a case may meet their clean-up (it then fails, unreported), never the next
// test's set-up. Its timeout is the chaos suite's clean-up's: a case there runs CLI processes.
fc.installGlobalPlugin(trackRunningCases, 'post');
afterEach(casesSettled, 300_000);
