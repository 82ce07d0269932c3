import { CreateDateColumn, PrimaryGeneratedColumn, UpdateDateColumn, type ValueTransformer } from 'typeorm';

/** Every catalog table has an integer id and created/updated timestamps. */
export abstract class CatalogEntity {
  @PrimaryGeneratedColumn()
  id: number;

  @CreateDateColumn()
  createdAt: Date;

  @UpdateDateColumn()
  updatedAt: Date;
}

/** A short list of words kept as one comma-separated column ("dispatcher,handler"). */
export const wordList: ValueTransformer = {
  to: (value: readonly string[] | undefined | null) =>
    value == null ? value : [...new Set(value)].sort().join(','),
  from: (value: string | null) => (value == null || value === '' ? [] : value.split(',')),
};
