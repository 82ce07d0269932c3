import { Injectable, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { JOB_HANDLER, type JobHandlerFn } from './job-handler.decorator.js';
import { declaredJobKind, declaredJobKinds, DEFAULT_JOB_KIND_OPTIONS, type JobKindOptions } from './job-kind.js';

export interface RegisteredHandler {
  kind: string;
  options: JobKindOptions;
  run: JobHandlerFn<object>;
  /** `Class.method`, for error messages. */
  where: string;
}

/** Finds the @JobHandler methods of every provider and checks one handler per declared kind. */
@Injectable()
export class JobHandlerRegistry implements OnModuleInit {
  private readonly handlers = new Map<string, RegisteredHandler>();

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
  ) {}

  onModuleInit(): void {
    const problems: string[] = [];
    for (const wrapper of this.discovery.getProviders()) {
      const instance = wrapper.instance as Record<string, unknown> | undefined;
      if (!instance || typeof instance !== 'object') continue;
      const prototype = Object.getPrototypeOf(instance) as object;
      for (const method of this.scanner.getAllMethodNames(prototype)) {
        const fn = instance[method];
        if (typeof fn !== 'function') continue;
        const kind = this.reflector.get<string | undefined>(JOB_HANDLER, fn);
        if (!kind) continue;
        const where = `${instance.constructor.name}.${method}`;
        const existing = this.handlers.get(kind);
        if (existing) {
          problems.push(`job kind "${kind}" has two handlers: ${existing.where} and ${where}`);
          continue;
        }
        const declared = declaredJobKind(kind);
        if (!declared) problems.push(`${where} handles "${kind}", which no defineJobKind() declares`);
        this.handlers.set(kind, {
          kind,
          options: declared?.options ?? DEFAULT_JOB_KIND_OPTIONS,
          run: (fn as JobHandlerFn<object>).bind(instance),
          where,
        });
      }
    }
    for (const kind of declaredJobKinds()) {
      if (!this.handlers.has(kind.name)) problems.push(`job kind "${kind.name}" has no handler`);
    }
    if (problems.length > 0) {
      throw new Error(`The worker cannot start:\n  - ${problems.join('\n  - ')}`);
    }
  }

  get(kind: string): RegisteredHandler | undefined {
    return this.handlers.get(kind);
  }

  /** Options of a kind, or the defaults for a kind this build does not know. */
  options(kind: string): JobKindOptions {
    return this.handlers.get(kind)?.options ?? declaredJobKind(kind)?.options ?? DEFAULT_JOB_KIND_OPTIONS;
  }
}
