/**
 * The Redis a queue campaign runs on: its URL checked before anything connects, and a first
 * connection that either works or says why not (unreachable, password refused, too old) with
 * the URL (never the password) and the fix, as an input error (exit 2).
 */
import { Redis } from 'ioredis';
import { InputError } from '../events/errors.ts';

export interface QueueUrl {
  host: string;
  port: number;
  db: number;
  username: string | undefined;
  password: string | undefined;
  tls: boolean;
  /** The URL as printed: the password masked. */
  display: string;
}

const DEFAULT_PORT = 6379;
/** BullMQ's own floor (RedisConnection.minimumVersion). */
const REDIS_VERSION_MIN = [5, 0, 0];
const CONNECT_TIMEOUT_MS = 5_000;

const usage = (text: string, why: string): InputError =>
  new InputError('argument', `--queue ${text}: ${why}; expected redis://HOST:PORT[/DB], like redis://127.0.0.1:6379/0`);

/** Parses redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (rediss:// for TLS). */
export function parseQueueUrl(text: string): QueueUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usage(text, 'not a URL');
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw usage(maskUrl(url), `scheme ${url.protocol.replace(/:$/, '')} is not redis`);
  if (url.hostname === '') throw usage(maskUrl(url), 'no host');
  const port = url.port === '' ? DEFAULT_PORT : Number(url.port);
  const dbText = url.pathname.replace(/^\//, '');
  if (dbText !== '' && !/^\d+$/.test(dbText)) throw usage(maskUrl(url), `database ${dbText} is not a number`);
  if (url.search !== '' || url.hash !== '') throw usage(maskUrl(url), 'no query or fragment is read');
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port, db: dbText === '' ? 0 : Number(dbText),
    username: url.username === '' ? undefined : decodeURIComponent(url.username),
    password: url.password === '' ? undefined : decodeURIComponent(url.password),
    tls: url.protocol === 'rediss:', display: maskUrl(url),
  };
}

function maskUrl(url: URL): string {
  const masked = new URL(url.href);
  if (masked.password !== '') masked.password = '***';
  return masked.href.replace(/\/$/, '');
}

/** A client for BullMQ: it reconnects after a Redis restart, and waits (not fails) meanwhile. */
export function redisClient(q: QueueUrl): Redis {
  return new Redis({
    host: q.host, port: q.port, db: q.db, username: q.username, password: q.password, ...(q.tls ? { tls: {} } : {}),
    maxRetriesPerRequest: null, connectTimeout: CONNECT_TIMEOUT_MS,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
  });
}

/** Connects once without retrying: the Redis answers, takes the password and is recent enough, or an InputError says what to fix. */
export async function checkRedis(q: QueueUrl): Promise<void> {
  const probe = new Redis({
    host: q.host, port: q.port, db: q.db, username: q.username, password: q.password, ...(q.tls ? { tls: {} } : {}),
    lazyConnect: true, connectTimeout: CONNECT_TIMEOUT_MS, maxRetriesPerRequest: 0, retryStrategy: () => null, enableReadyCheck: false,
  });
  // The first error says most (a refused password, before "Connection is closed"); without a listener ioredis would print it.
  let first: Error | undefined;
  probe.on('error', (error: Error) => { first ??= error; });
  try {
    await probe.connect();
    const info = await probe.info('server');
    const version = /redis_version:(\S+)/.exec(info)?.[1] ?? '0';
    if (versionBelow(version, REDIS_VERSION_MIN)) {
      throw new InputError('argument', `--queue ${q.display}: Redis ${version} is too old; BullMQ needs Redis ${REDIS_VERSION_MIN.join('.')} or newer (upgrade redis-server)`);
    }
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw new InputError('argument', `--queue ${q.display}: ${whyRefused(first ?? (error as Error), q)}`);
  } finally {
    probe.disconnect();
  }
}

function whyRefused(error: Error, q: QueueUrl): string {
  const message = error.message ?? String(error);
  if (/WRONGPASS|invalid password|invalid username-password/i.test(message)) return `Redis refused the user name or password (${message.split('\n')[0]}); give the right ones in the URL, redis://USER:PASSWORD@${q.host}:${q.port}`;
  if (/NOAUTH/i.test(message)) return `Redis asks for a password (${message.split('\n')[0]}); give it in the URL, redis://:PASSWORD@${q.host}:${q.port}`;
  if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|connect/i.test(message)) {
    return `cannot reach Redis (${message.split('\n')[0]}); start it (redis-server --port ${q.port}) or check the host and port`;
  }
  if (/DB index is out of range|invalid DB index/i.test(message)) return `Redis has no database ${q.db} (${message}); choose a smaller /DB`;
  return `Redis refused the connection (${message.split('\n')[0]})`;
}

function versionBelow(version: string, min: number[]): boolean {
  const parts = version.split('.').map(Number);
  for (let i = 0; i < min.length; i++) {
    if ((parts[i] ?? 0) !== min[i]) return (parts[i] ?? 0) < min[i];
  }
  return false;
}
