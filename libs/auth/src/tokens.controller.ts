import { Body, Controller, Delete, Get, HttpCode, Param, ParseIntPipe, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { ApiTokensService } from './api-tokens.service.js';
import { RequireScope, type Principal } from './auth.decorators.js';
import { CreateTokenDto } from './dto/create-token.dto.js';
import { IssuedTokenView, TokenView } from './dto/token.view.js';

@ApiTags('tokens')
@ApiBearerAuth()
@RequireScope('admin')
@Controller('v1/tokens')
export class TokensController {
  constructor(private readonly tokens: ApiTokensService) {}

  @Post()
  @ApiOperation({ summary: 'Create an API token (shown once)' })
  @ApiResponse({ status: 201, type: IssuedTokenView })
  async create(@Body() body: CreateTokenDto, @Req() req: { principal: Principal }): Promise<IssuedTokenView> {
    const { token, record } = await this.tokens.issue(
      body.name,
      body.scopes,
      { actor: `token:${req.principal.name}`, via: 'api' },
      { expiresAt: body.expiresAt ? new Date(body.expiresAt) : null },
    );
    return { ...TokenView.of(record), token };
  }

  @Get()
  @ApiOperation({ summary: 'List API tokens (never the tokens themselves)' })
  @ApiResponse({ status: 200, type: TokenView, isArray: true })
  async list(): Promise<TokenView[]> {
    return (await this.tokens.list()).map(TokenView.of);
  }

  @Delete(':id')
  @HttpCode(200)
  @ApiOperation({ summary: 'Revoke an API token' })
  @ApiResponse({ status: 200, type: TokenView })
  async revoke(@Param('id', ParseIntPipe) id: number, @Req() req: { principal: Principal }): Promise<TokenView> {
    return TokenView.of(await this.tokens.revoke(id, { actor: `token:${req.principal.name}`, via: 'api' }));
  }
}
