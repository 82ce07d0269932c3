import { Body, Controller, Delete, Get, HttpCode, Param, ParseIntPipe, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { RequireScope, type Principal } from '@app/auth';
import { CreatePinRuleDto, PinRuleView } from './dto/pin-rule.dto.js';
import { PinRulesService } from './pin-rules.service.js';

const by = (req: { principal: Principal }) => ({ actor: `token:${req.principal.name}`, via: 'api' as const });

@ApiTags('pin rules')
@ApiBearerAuth()
@RequireScope('admin')
@Controller('v1/pin-rules')
export class PinRulesController {
  constructor(private readonly rules: PinRulesService) {}

  @Post()
  @ApiOperation({ summary: 'Pin matching orders (customer email, or an order attribute) to a code group and/or master server' })
  @ApiResponse({ status: 201, type: PinRuleView })
  async create(@Body() body: CreatePinRuleDto, @Req() req: { principal: Principal }): Promise<PinRuleView> {
    return PinRuleView.of(await this.rules.create(body, by(req)));
  }

  @Get()
  @ApiResponse({ status: 200, type: PinRuleView, isArray: true })
  async list(): Promise<PinRuleView[]> {
    return (await this.rules.list()).map(PinRuleView.of);
  }

  @Delete(':id')
  @HttpCode(204)
  async remove(@Param('id', ParseIntPipe) id: number, @Req() req: { principal: Principal }): Promise<void> {
    await this.rules.remove(id, by(req));
  }
}
