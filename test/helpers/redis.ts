/**
 * A real Redis for the queue tests: `redis-server` (the Debian package) on a free loopback
 * port, in a scratch folder, without persistence; stopped (and its folder removed) after.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { removeDir, tempDir } from './cli.ts';

export interface RedisServer {
  port: number;
  url: string;
  stop(): Promise<void>;
}

/** A port nothing listens on now (the kernel's pick for an ephemeral listener). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const READY_TRIES = 100;
const READY_WAIT_MS = 50;

async function waitReady(port: number, password: string | undefined): Promise<void> {
  for (let i = 0; i < READY_TRIES; i++) {
    const client = new Redis({ port, host: '127.0.0.1', password, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    client.on('error', () => {});
    try {
      await client.connect();
      if ((await client.ping()) === 'PONG') return;
    } catch {
      // not up yet
    } finally {
      client.disconnect();
    }
    await new Promise((r) => setTimeout(r, READY_WAIT_MS));
  }
  throw new Error(`redis-server on port ${port} did not answer`);
}

/** Starts redis-server on a free port; `password` sets requirepass. */
export async function startRedis(password?: string): Promise<RedisServer> {
  const port = await freePort();
  const dir = tempDir('chronovisor-redis');
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...(password ? ['--requirepass', password] : [])];
  const child: ChildProcess = spawn('/usr/bin/redis-server', args, { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitReady(port, password);
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      removeDir(dir);
    },
  };
}
