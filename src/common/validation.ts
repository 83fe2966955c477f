import { ArgumentMetadata, Injectable, ValidationError, ValidationPipe } from '@nestjs/common';
import { DomainException, ErrorCode, FieldError } from './errors.js';

/** Flattens class-validator's tree into `{field: "simulate.fail_at_percent", message}` entries. */
export function fieldErrors(errors: ValidationError[], parent = ''): FieldError[] {
  return errors.flatMap((e) => {
    const field = parent ? `${parent}.${e.property}` : e.property;
    const own = Object.values(e.constraints ?? {}).map((message) => ({ field, message }));
    return own.concat(fieldErrors(e.children ?? [], field));
  });
}

export function validationFailed(errors: FieldError[]): DomainException {
  const fields = [...new Set(errors.map((e) => e.field))];
  const detail = fields.length === 1 ? `The field ${fields[0]} is invalid: ${errors[0].message}.` : `${fields.length} fields are invalid: ${fields.join(', ')}.`;
  return new DomainException(ErrorCode.ValidationFailed, detail, errors);
}

/** Validates bodies and queries against their DTO; a known field with a wrong type or range is a 422 naming it. */
@Injectable()
export class RequestValidationPipe extends ValidationPipe {
  constructor() {
    super({
      transform: true,
      whitelist: false,
      forbidUnknownValues: false,
      validationError: { target: false, value: false },
      stopAtFirstError: true,
      exceptionFactory: (errors) => validationFailed(fieldErrors(errors)),
    });
  }

  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type === 'body' && metadata.metatype && metadata.metatype !== Object) {
      value ??= {};
      if (typeof value !== 'object' || Array.isArray(value)) {
        throw new DomainException(ErrorCode.ValidationFailed, 'The request body must be a JSON object.', [{ field: 'body', message: 'must be a JSON object' }]);
      }
    }
    return super.transform(value, metadata);
  }
}
