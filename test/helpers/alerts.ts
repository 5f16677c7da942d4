import type { AlertRule } from '../../src/config.js';

/** The webhook secret of alertEnv: a receiver in a test checks the signatures with it. */
export const ALERT_TEST_SECRET = 'alert-test-secret-0123456789';

/**
 * The rules whose alerts the end-to-end tests' expected sets were written for: a copy, not
 * ALERT_RULE_NAMES, so that a rule added later fires in none of those tests and what they assert
 * stays what they meant (ALERT_RULES=all would raise its alerts among theirs). A new rule's tests
 * name it themselves.
 */
export const TESTED_ALERT_RULES = [
  'admin_flag',
  'group_membership',
  'access_permission',
  'integration_user',
  'user_restored',
] as const satisfies readonly AlertRule[];

/**
 * The ALERT_* environment of a test whose runs raise alerts and send them to `url`, signed with
 * ALERT_TEST_SECRET, retried at once: `rules` (explicit: the rules whose alerts the test expects;
 * none when empty, for an empty ALERT_RULES means all) and `groups` (ALERT_GROUPS), then `extra`.
 */
export function alertEnv(
  url: string,
  { rules, groups }: { rules: readonly AlertRule[]; groups?: string },
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    ALERT_WEBHOOK_URL: url,
    ALERT_WEBHOOK_SECRET: ALERT_TEST_SECRET,
    ALERT_RULES: rules.length === 0 ? 'none' : rules.join(','),
    ...(groups === undefined ? {} : { ALERT_GROUPS: groups }),
    ALERT_RETRY_BASE_DELAY: '0',
    ...extra,
  };
}
