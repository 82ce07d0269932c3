import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
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
      const name = message.messageId.replace(/[^A-Za-z0-9._@-]/g, '_');
      this.writeMailFile(`${name}.eml`, (info as unknown as { message: Buffer }).message);
    }
  }

  /**
   * A welcome mail carries the customer's FTP password: the mail directory
   * is 0700 and each file 0600, written whole (a temporary file renamed over
   * the name, so a resend never leaves a half-written or looser file).
   */
  private writeMailFile(name: string, content: Buffer): void {
    const dir = this.config.mailDir;
    // The parents as usual; the mail directory itself 0700.
    mkdirSync(dirname(dir), { recursive: true });
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if ((statSync(dir).mode & 0o077) !== 0) chmodSync(dir, 0o700);
    const temporary = join(dir, `.${name}.${process.pid}.${randomBytes(4).toString('hex')}`);
    try {
      writeFileSync(temporary, content, { mode: 0o600, flag: 'wx' });
      renameSync(temporary, join(dir, name));
    } catch (error) {
      rmSync(temporary, { force: true });
      throw error;
    }
  }

  onModuleDestroy(): void {
    this.transport.close();
  }
}
