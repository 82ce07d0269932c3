import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { Server } from '../entities/index.js';

export type NewServer = Omit<Server, 'id' | 'createdAt' | 'updatedAt'>;

@Injectable()
export class ServerRepository {
  constructor(@InjectRepository(Server) private readonly servers: Repository<Server>) {}

  list(): Promise<Server[]> {
    return this.servers.find({ order: { id: 'ASC' } });
  }

  count(): Promise<number> {
    return this.servers.count();
  }

  findById(id: number): Promise<Server | null> {
    return this.servers.findOne({ where: { id } });
  }

  findByHostname(hostname: string): Promise<Server | null> {
    return this.servers.findOne({ where: { hostname } });
  }

  insert(server: NewServer): Promise<Server> {
    return this.servers.save(this.servers.create(server));
  }
}
