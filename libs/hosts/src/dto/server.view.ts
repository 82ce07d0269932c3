import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { SERVER_ROLES, type Server, type ServerIp } from '@app/catalog';

export class ServerView {
  @ApiProperty() id: number;
  @ApiProperty() hostname: string;
  @ApiPropertyOptional({ type: String, nullable: true }) privateIp: string | null;
  @ApiProperty({ enum: SERVER_ROLES, isArray: true }) roles: string[];
  @ApiProperty() transport: string;
  @ApiPropertyOptional({ type: String, nullable: true }) sshHost: string | null;
  @ApiPropertyOptional({ type: Number, nullable: true }) sshPort: number | null;
  @ApiPropertyOptional({ type: String, nullable: true }) sshUser: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) sshKeyRef: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) sshHostKey: string | null;
  @ApiProperty() homeRoot: string;
  @ApiProperty() sharedCodeRoot: string;
  @ApiProperty() nginxConfDir: string;
  @ApiProperty() cronDir: string;
  @ApiProperty() certsRoot: string;
  @ApiPropertyOptional({ type: String, nullable: true }) phpFpmPoolDir: string | null;
  @ApiProperty() state: string;
  @ApiPropertyOptional({ type: Number, nullable: true }) capacity: number | null;
  @ApiPropertyOptional({ type: String, nullable: true }) dbOptionsFile: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) nginxPidFile: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) phpFpmPidFile: string | null;

  static of(s: Server): ServerView {
    const { createdAt: _c, updatedAt: _u, ...rest } = s;
    return { ...rest, roles: [...s.roles] };
  }
}

export class ServerIpView {
  @ApiProperty() id: number;
  @ApiProperty() ip: string;
  @ApiProperty() kind: string;
  @ApiPropertyOptional({ type: String, nullable: true }) failoverGroup: string | null;
  @ApiPropertyOptional({ type: Number, nullable: true }) activeServerId: number | null;

  static of(ip: ServerIp): ServerIpView {
    return { id: ip.id, ip: ip.ip, kind: ip.kind, failoverGroup: ip.failoverGroup, activeServerId: ip.activeServerId };
  }
}

export class CheckItemView {
  @ApiProperty() item: string;
  @ApiProperty() ok: boolean;
  @ApiProperty() detail: string;
}

export class ServerCheckView {
  @ApiProperty() ok: boolean;
  @ApiProperty({ type: CheckItemView, isArray: true }) items: CheckItemView[];
}
