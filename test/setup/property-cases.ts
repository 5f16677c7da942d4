import fc from 'fast-check';
import { afterEach } from 'vitest';
import { casesSettled, trackRunningCases } from '../properties/running-cases.js';

// Every async property of every test file: a case its time limit gave up on ends before the next test starts.
fc.installGlobalPlugin(trackRunningCases, 'post');
afterEach(casesSettled);
