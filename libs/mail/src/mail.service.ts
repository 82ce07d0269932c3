import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import nodemailer, { type Transporter } from 'nodemailer';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  /** Stable per message, so a resend after a crash is recognizably the same mail. */
  messageId: string;
}

export const MAIL_FROM_DEFAULT = 'Shop hosting <hosting@localhost>';

/**
 * Mail to customers through nodemailer: SMTP when SMTP_URL is set, else
 * each message written as an .eml file to the mail directory (the embedded
 * default). Same message either way.
 */
@Injectable()
export class MailService implements OnModuleDestroy {
  private readonly transport: Transporter;

  constructor(@Inject(ENGINE_CONFIG) private readonly config: EngineConfig) {
    this.transport = config.smtpUrl ? nodemailer.createTransport(config.smtpUrl) : nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
  }

  async send(message: MailMessage): Promise<void> {
    const info = await this.transport.sendMail({
      from: MAIL_FROM_DEFAULT,
      to: message.to,
      subject: message.subject,
      text: message.text,
      messageId: message.messageId,
    });
    if (!this.config.smtpUrl) {
      mkdirSync(this.config.mailDir, { recursive: true });
      const name = message.messageId.replace(/[^A-Za-z0-9._@-]/g, '_');
      writeFileSync(join(this.config.mailDir, `${name}.eml`), (info as unknown as { message: Buffer }).message);
    }
  }

  onModuleDestroy(): void {
    this.transport.close();
  }
}
