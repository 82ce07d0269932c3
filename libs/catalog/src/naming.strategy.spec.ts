import { SnakeNamingStrategy } from './naming.strategy.js';

describe('SnakeNamingStrategy', () => {
  it('maps camelCase properties to the catalog snake_case columns', () => {
    const naming = new SnakeNamingStrategy();
    expect(naming.columnName('sharedCodeGroupId', undefined, [])).toBe('shared_code_group_id');
    expect(naming.columnName('x', 'dbPasswordEnc', [])).toBe('db_password_enc');
    expect(naming.joinColumnName('masterServer', 'id')).toBe('master_server_id');
  });
});
