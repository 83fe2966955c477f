import { BeforeApplicationShutdown, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, MoreThan } from 'typeorm';
import { TaskEvent } from './task-event.entity.js';
import { isTerminalEvent } from '../webhooks/payloads.js';
import { EventBus } from '../events/event-bus.js';

// Reads the database at this pace even without a signal: a lost pub/sub message (Redis restart) delays, never loses.
const SAFETY_POLL_MS = 2_000;

export function eventsAfter(db: DataSource, taskId: string, sequence: number, take = 500): Promise<TaskEvent[]> {
  return db
    .getRepository(TaskEvent)
    .find({ where: { taskId, sequence: MoreThan(sequence) }, order: { sequence: 'ASC' }, take });
}

/**
 * Follows one task's events in order, from the database, woken by the event bus. No worker is held and the
 * database is read only when something happened (plus a slow safety poll).
 */
@Injectable()
export class TaskWatcher implements BeforeApplicationShutdown {
  // Waits in progress (long polls, Prefer: wait), ended early on shutdown so the HTTP server can close.
  private readonly waits = new Set<() => void>();
  private shuttingDown = false;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly bus: EventBus,
  ) {}

  /** Calls `onEvents` with each new batch of events after `fromSequence` until it returns 'stop' or stop() is called. */
  follow(taskId: string, fromSequence: number, onEvents: (events: TaskEvent[]) => 'stop' | void): () => void {
    let last = fromSequence;
    let stopped = false;
    let reading: Promise<void> | undefined;
    let again = false;
    const read = (): void => {
      if (stopped) return;
      if (reading) {
        again = true;
        return;
      }
      reading = (async () => {
        do {
          again = false;
          const events = await eventsAfter(this.db, taskId, last).catch(() => []);
          if (events.length === 0 || stopped) continue;
          last = events[events.length - 1].sequence;
          if (onEvents(events) === 'stop') stop();
        } while (again && !stopped);
      })().finally(() => (reading = undefined));
    };
    const unsubscribe = this.bus.subscribe(taskId, read);
    const timer = setInterval(read, SAFETY_POLL_MS);
    const stop = () => {
      stopped = true;
      clearInterval(timer);
      unsubscribe();
    };
    read();
    return stop;
  }

  /** Resolves true once the task has a terminal event, or false after `ms` (or at once when shutting down). */
  untilTerminal(taskId: string, ms: number): Promise<boolean> {
    if (this.shuttingDown) return Promise.resolve(false);
    return new Promise((resolve) => {
      const end = (terminal: boolean) => {
        clearTimeout(timer);
        stop();
        this.waits.delete(giveUp);
        resolve(terminal);
      };
      const giveUp = () => end(false);
      const timer = setTimeout(giveUp, ms);
      this.waits.add(giveUp);
      const stop = this.follow(taskId, 0, (events) => {
        if (!events.some((e) => isTerminalEvent(e.type))) return;
        end(true);
        return 'stop';
      });
    });
  }

  /** True once the application is closing: a wait that ended early says so to its caller. */
  get closing(): boolean {
    return this.shuttingDown;
  }

  /** A long poll may hold its request for minutes: answer it now rather than hold the shutdown. */
  beforeApplicationShutdown(): void {
    this.shuttingDown = true;
    for (const giveUp of [...this.waits]) giveUp();
  }
}
