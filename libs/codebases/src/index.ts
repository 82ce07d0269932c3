export * from './manifest.js';
export * from './sample-codebase.js';
export * from './code-group-clone.job.js';
export * from './code-groups.service.js';
export * from './codebases.module.js';
export * from './dto/code-group.dto.js';
export * from './render-template.js';
export * from './tree-plan.js';
