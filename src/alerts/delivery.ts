import { ALERT_FLOOD_RULE, type AlertsConfig } from '../config.js';
import { claimDueAlerts, type AlertRow } from '../db/sql/claim-due-alerts.js';
import { bodyChunks } from '../fetch-body.js';
import { dispatcherFor, withDispatcher } from '../fetch-dispatcher.js';
import type pg from 'pg';
import { recordAlertOutcome, type AlertOutcome } from '../db/sql/record-alert-outcome.js';
import { releaseAlerts } from '../db/sql/release-alerts.js';
import { errorCode, errorMessage, isUndefinedTable, oneLine, printable } from '../errors.js';
import { LinkedSignal } from '../linked-signal.js';
import { hostKeyLabels, quotesSecret } from '../secret-echo.js';
import type { Logger } from '../logger.js';
import { IDEMPOTENCY_HEADER, SIGNATURE_HEADER, signBody } from './signing.js';

type Webhook = NonNullable<AlertsConfig['webhook']>;

/** What the webhook receives: one alert, as JSON. */
export interface AlertPayload {
  type: 'cpq-sync.alert';
  idempotencyKey: string;
  site: string;
  /** Null in an alert_flood summary alone, which is about a run, not a user. */
  company: string | null;
  login: string | null;
  rule: AlertRow['rule'];
  /** What the rule is about: the flag's column, the group, `<type>:<variableName>` of a permission, … */
  subject: string;
  old: unknown;
  new: unknown;
  runId: string;
  /** When the change took effect in the database's history (the run's effective time). */
  detectedAt: string;
  /** When this attempt was sent; a receiver can refuse old deliveries (the signature covers it). */
  sentAt: string;
  /** A line a Slack incoming webhook shows as is. */
  text: string;
}

/** Slack reads &, < and > as markup (links, @channel): CPQ's values are shown as text. */
const slackEscape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * A CPQ value in `text`, in a code span: Slack makes no formatting, links or emoji of it. Printable,
 * so a line break in a login cannot start a line that reads like a message of its own; a backtick
 * (which would end the span) as '; &, < and > escaped, which Slack reads as markup even in a span.
 */
const slackValue = (text: string) => `\`${slackEscape(printable(text).replace(/`/g, "'"))}\``;

/** What an alert of `alert.rule` says the user did, in its text (exported for the test that every rule has words). */
export function describe(alert: Pick<AlertRow, 'rule' | 'subject' | 'old_value' | 'new_value'>): string {
  const subject = slackValue(alert.subject);
  switch (alert.rule) {
    case 'admin_flag':
      return `${alert.new_value === true ? 'gained' : 'lost'} admin flag ${subject}`;
    case 'group_membership':
      return `joined group ${subject}`;
    case 'access_permission':
      return `was granted access permission ${subject}`;
    case 'integration_user':
      return alert.old_value === null ? 'was created as an integration user' : 'became an integration user';
    case 'user_restored':
      return `was restored (deleted since ${slackEscape(printable(String(alert.old_value)))})`;
    case ALERT_FLOOD_RULE:
      // About a run, not a user: alertPayload writes its line with floodText.
      return '';
  }
}

/** The counts of an alert_flood summary (its new_value, written by insertAlerts). */
interface FloodCounts {
  alerts: number;
  sent: number;
  suppressed: number;
  byRule: Record<string, number>;
  changesSince: string;
}

/** The line of an alert_flood summary: the run, its counts (numbers and rule names of this program's own) and where to look. */
function floodText(alert: AlertRow): string {
  const c = alert.new_value as FloodCounts;
  const byRule = Object.entries(c.byRule)
    .map(([rule, n]) => `${rule} ${n}`)
    .join(', ');
  return (
    `CPQ ${slackEscape(alert.site)}: run ${alert.run_id} raised ${c.alerts} alerts, more than ALERT_MAX_PER_RUN (${c.sent}) (${byRule}): ` +
    `the first ${c.sent} follow this one, the other ${c.suppressed} are not sent (\`cpq-sync alerts list --status suppressed\`); ` +
    `every change is in the change log: \`cpq-sync changes --since ${c.changesSince}\``
  );
}

export function alertPayload(alert: AlertRow, sentAt = new Date()): AlertPayload {
  const who = slackValue(`${alert.company_login ?? ''}/${alert.login ?? ''}`);
  return {
    type: 'cpq-sync.alert',
    idempotencyKey: alert.idempotency_key,
    site: alert.site,
    company: alert.company_login,
    login: alert.login,
    rule: alert.rule,
    subject: alert.subject,
    old: alert.old_value,
    new: alert.new_value,
    runId: alert.run_id,
    detectedAt: new Date(alert.detected_at).toISOString(),
    sentAt: sentAt.toISOString(),
    text: alert.rule === ALERT_FLOOD_RULE ? floodText(alert) : `CPQ ${slackEscape(alert.site)}: ${who} ${describe(alert)} (run ${alert.run_id})`,
  };
}

/**
 * The outcome of one POST, as recordAlertOutcome takes it but for the retry delay. `bare`: the
 * error without the receiver's words, which may quote the alert's user.
 */
export type PostResult = { ok: true } | { ok: false; permanent: boolean; error: string; bare: string };

/** The receiver's words on a refusal, briefly: untrusted text, one line, at most this many characters. */
const ERROR_BODY_CHARS = 200;

/** How many characters of the webhook URL's path and query in a row make an answer one that quotes it (quotesSecret). */
const URL_ECHO_CHARS = 12;

/**
 * The path segments and query values of a webhook URL that look like keys (letters and digits,
 * both, 6 or more), each a secret of its own: one shorter than URL_ECHO_CHARS, echoed without its
 * parameter's name (`{"token":"K7q2Wm9xZp4"}` for `?key=K7q2Wm9xZp4`), quoted too few characters
 * of the whole path and query to be seen (review HM). Words (`hooks`, `services`) are left out:
 * standing alone in an answer, they would hide it for nothing. The host's labels that look like
 * keys too (hostKeyLabels): a Pipedream URL's secret is its host's first label (review IM).
 */
function urlTokens(url: URL): string[] {
  const parts = [...url.pathname.split('/').map((p) => safeDecode(p)), ...url.searchParams.values()];
  const keys = parts.filter((p) => /[0-9]/.test(p) && /[A-Za-z]/.test(p) && (p.match(/[A-Za-z0-9]/g)?.length ?? 0) >= 6);
  return [...keys, ...hostKeyLabels(url.hostname)];
}

/** A path segment with its percent-escapes undone, or as it is when they are not UTF-8. */
function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/**
 * The receiver's words, briefly; none when they quote the webhook's path or query in any form (a
 * 404 page of many frameworks names the path it was asked for): a Slack URL's path is its secret;
 * nor when they quote a label of its host that looks like a key (urlTokens).
 */
async function briefBody(response: Response, webhookUrl: string, signal: AbortSignal): Promise<string> {
  try {
    const url = new URL(webhookUrl);
    const secret = (url.pathname + url.search).replace(/^\//, '');
    const secrets = [secret, ...urlTokens(url)];
    // The first chunk is plenty; leaving the loop cancels the rest of the body.
    for await (const chunk of bodyChunks(response, signal)) {
      const text = Buffer.from(chunk.buffer, chunk.byteOffset, Math.min(chunk.length, ERROR_BODY_CHARS * 4)).toString('utf8');
      if (quotesSecret(text, secrets, URL_ECHO_CHARS)) return '(its answer quotes the webhook URL: not shown)';
      return oneLine(text.replace(/[^\x20-\x7e\s]/g, '?')).slice(0, ERROR_BODY_CHARS);
    }
    return '';
  } catch {
    return '';
  }
}

/**
 * POSTs `body` (one alert's JSON, signed) to the webhook. Bounded by the webhook's timeout, body
 * included; redirects are not followed (a signed alert goes where it was configured to, or
 * nowhere). Errors name the status or the network failure, never the URL (a Slack URL is a
 * credential) or the secret.
 */
export async function postAlert(webhook: Webhook, body: string, idempotencyKey: string, signal?: AbortSignal): Promise<PostResult> {
  // Let go of once the answer is read (see LinkedSignal for why not AbortSignal.timeout).
  const request = new LinkedSignal(signal, webhook.timeoutMs);
  try {
    // A timeout of 5 minutes or more takes a dispatcher without fetch's own 300 s limits.
    const init = withDispatcher(
      {
        method: 'POST',
        redirect: 'manual',
        signal: request.signal,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'cpq-user-sync',
          [SIGNATURE_HEADER]: signBody(body, webhook.secret),
          [IDEMPOTENCY_HEADER]: idempotencyKey,
        },
        body,
      },
      dispatcherFor(undefined, webhook.timeoutMs),
    );
    const response = await fetch(webhook.url, init);
    if (response.ok) {
      await response.body?.cancel();
      return { ok: true };
    }
    const said = await briefBody(response, webhook.url, request.signal);
    const bare = `the webhook answered HTTP ${response.status}`;
    const error = `${bare}${said ? `: ${said}` : ''}`;
    if (response.status >= 300 && response.status < 400)
      return { ok: false, permanent: true, error: `${error} (a redirect, not followed)`, bare: `${bare} (a redirect, not followed)` };
    const transient = response.status === 408 || response.status === 425 || response.status === 429 || response.status >= 500;
    return { ok: false, permanent: !transient, error, bare };
  } catch (err) {
    // No words of the receiver in these.
    const failed = (error: string): PostResult => ({ ok: false, permanent: false, error, bare: error });
    if (request.timedOut) return failed(`the webhook did not answer within ${webhook.timeoutMs} ms`);
    if (signal?.aborted) return failed('delivery interrupted (shutdown)');
    const cause = (err as { cause?: unknown }).cause;
    const code = errorCode(cause) ?? errorCode(err);
    return failed(`the webhook could not be reached (${code ?? oneLine(errorMessage(cause ?? err)).slice(0, ERROR_BODY_CHARS)})`);
  } finally {
    request.done();
  }
}

/** The wait before attempt `attempts + 1`: the base delay doubled per attempt made, at most the maximum. */
function retryDelayMs(config: Pick<AlertsConfig, 'retryBaseDelayMs' | 'retryMaxDelayMs'>, attempts: number): number {
  return Math.min(config.retryMaxDelayMs, config.retryBaseDelayMs * 2 ** Math.min(Math.max(attempts - 1, 0), 40));
}

export interface DeliveryReport {
  delivered: number;
  /** Refused for good in this pass (now `failed`). */
  failed: number;
  /** Attempted and left pending for a later attempt. */
  retrying: number;
  /** The database error that ended the pass, when one did: the alerts not recorded wait for the next attempt. */
  stoppedBy?: string;
}

const BATCH = 20;

/**
 * One line per delivery pass, whatever the number of alerts (each alert's outcome is at debug
 * level, and in `alerts list`): refusals at error level, with the count, the webhook's answer
 * (the most frequent, and how many others) and what to do; a pass that left one pending, or was
 * cut short by a shutdown (`interrupted`: the alerts it gave back), at warn level.
 */
function logPass(
  log: Logger,
  report: DeliveryReport,
  refusals: ReadonlyMap<string, number>,
  pending: { attempts: number; retryInMs: number; error: string } | undefined,
  interrupted: number,
) {
  const pendingText = pending
    ? `the webhook could not take one now (${pending.error}): it and the alerts after it stay pending, retried in ${Math.ceil(pending.retryInMs / 1000)} s`
    : interrupted > 0
      ? `interrupted by shutdown: ${interrupted} ${interrupted === 1 ? 'alert' : 'alerts'} given back, pending and due at once; the next run or delivery pass sends them`
      : '';
  if (report.failed > 0) {
    const [answer] = [...refusals.entries()].sort((a, b) => b[1] - a[1])[0]!;
    const others = refusals.size > 1 ? `, and ${refusals.size - 1} other answer${refusals.size > 2 ? 's' : ''}` : '';
    const plural = report.failed === 1 ? 'alert' : 'alerts';
    log.error(
      {
        ...report,
        error: answer,
        ...(pending ? { pendingError: pending.error, retryInMs: pending.retryInMs } : {}),
        ...(interrupted > 0 ? { interrupted } : {}),
      },
      `${report.failed} ${plural} refused by the webhook (${answer}${others}): marked failed; fix the receiver or ALERT_WEBHOOK_URL, then \`cpq-sync alerts retry\` sends them again (\`cpq-sync alerts list\` shows them)${pendingText ? `; ${pendingText}` : ''}`,
    );
  } else if (pending) {
    log.warn({ ...report, attempts: pending.attempts, retryInMs: pending.retryInMs, error: pending.error }, `alert not delivered: ${pendingText}`);
  } else if (interrupted > 0) {
    // Silent, a shutdown during the pass (after the run committed) left the alerts unsent with no word of it.
    log.warn({ ...report, interrupted }, `alert delivery ${pendingText}`);
  } else if (report.delivered > 0) {
    log.info({ ...report }, 'alert delivery pass');
  }
}

/**
 * Delivers the pending alerts that are due, oldest first, one at a time, and records each
 * outcome. The first alert the receiver cannot take for now (down, timeout, 5xx, 429) ends the
 * pass: it and the rest of its batch wait for the backoff, so a receiver that is down costs
 * one timeout per pass, not one per alert. Never throws: a database or network problem is
 * logged and the alerts stay pending, for the next run or the worker's next retry.
 */
export async function deliverPendingAlerts(deps: { on: pg.Pool; config: AlertsConfig; log: Logger; signal?: AbortSignal }): Promise<DeliveryReport> {
  const { on, config, log, signal } = deps;
  const report: DeliveryReport = { delivered: 0, failed: 0, retrying: 0 };
  const webhook = config.webhook;
  if (!webhook) return report;
  // What the pass's one log line says: a webhook refusing every alert logged a line per alert.
  const refusals = new Map<string, number>();
  let pending: { attempts: number; retryInMs: number; error: string } | undefined;
  let interrupted = 0;
  let claimed = false;
  try {
    for (;;) {
      if (signal?.aborted) break;
      // Long enough for a whole batch of slow answers; after it, another process may take them.
      const batch = await claimDueAlerts(on, BATCH, BATCH * webhook.timeoutMs + 60_000);
      claimed = true;
      if (batch.length === 0) break;
      let stopped = false;
      for (const [i, alert] of batch.entries()) {
        const payload = alertPayload(alert);
        const result = await postAlert(webhook, JSON.stringify(payload), alert.idempotency_key, signal);
        if (!result.ok && signal?.aborted) {
          // Shutting down: this alert and the rest of the batch are due again at once, no attempt counted.
          await releaseAlerts(
            on,
            batch.slice(i).map((a) => a.id),
            0,
          );
          interrupted = batch.length - i;
          stopped = true;
          break;
        }
        let outcome: AlertOutcome;
        if (result.ok) outcome = { status: 'delivered' };
        else if (result.permanent) outcome = { status: 'failed', error: result.error, bare: result.bare };
        else outcome = { status: 'retry', error: result.error, bare: result.bare, retryInMs: retryDelayMs(config, alert.attempts + 1) };
        await recordAlertOutcome(on, alert, outcome);
        if (outcome.status === 'delivered') report.delivered++;
        else if (outcome.status === 'failed') {
          report.failed++;
          refusals.set(outcome.error, (refusals.get(outcome.error) ?? 0) + 1);
          log.debug({ alertId: alert.id, rule: alert.rule, error: outcome.error }, 'alert refused by the webhook: marked failed');
        } else {
          report.retrying++;
          pending = { attempts: alert.attempts + 1, retryInMs: outcome.retryInMs, error: outcome.error };
          log.debug({ alertId: alert.id, ...pending }, 'alert not delivered; it stays pending');
          await releaseAlerts(
            on,
            batch.slice(i + 1).map((a) => a.id),
            outcome.retryInMs,
          );
          stopped = true;
          break;
        }
      }
      if (stopped) break;
    }
  } catch (err) {
    // No outbox to claim from (a run whose migration the database refused: read-only, LATIN1, a
    // role that may not create the schema): no alert can be pending, and a warning that delivery
    // was stopped stood beside the run's own one line. One lost after a claim is still an error.
    if (!claimed && isUndefinedTable(err)) return report;
    report.stoppedBy = oneLine(errorMessage(err));
    log.warn({ error: report.stoppedBy }, 'alert delivery stopped by a database error; pending alerts wait for the next attempt');
  }
  logPass(log, report, refusals, pending, interrupted);
  return report;
}
