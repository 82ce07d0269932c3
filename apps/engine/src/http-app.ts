import type { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { DomainExceptionFilter, createValidationPipe } from '@app/common';

/** Largest JSON body the API accepts; an order is a few kilobytes. */
export const BODY_LIMIT = '256kb';

/** The HTTP conventions every endpoint shares: validation, errors, OpenAPI. */
export function configureHttpApp(app: NestExpressApplication): void {
  app.disable('x-powered-by');
  app.useBodyParser('json', { limit: BODY_LIMIT });
  app.useGlobalPipes(createValidationPipe());
  app.useGlobalFilters(new DomainExceptionFilter());

  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('Shop provisioning engine')
      .setDescription(
        'Provisions hosted shops. Authenticate with `Authorization: Bearer <token>`; ' +
          'tokens carry scopes (orders, support, admin). Errors are `{ code, message, details }`.',
      )
      .setVersion('1')
      .addBearerAuth()
      .build(),
  );
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs-json' });
}
