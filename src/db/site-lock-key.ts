/**
 * The first key of every site's sync lock ("cpqs" in ASCII); the second is the site's lock_id
 * (cpq.sites). Two-key advisory locks never collide with one-key ones (the commit-order lock, and
 * the single lock of releases before sites). Taken by withSyncLock, looked up by readSyncLockHolder.
 */
export const SITE_LOCK_CLASS = 1668313459;
