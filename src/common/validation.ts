import { ArgumentMetadata, Injectable, ValidationError, ValidationPipe } from '@nestjs/common';
import { buildMessage, getMetadataStorage, ValidateBy, type ValidationOptions } from 'class-validator';
import { DomainException, ErrorCode, FieldError } from './errors.js';

/**
 * class-validator's ArrayUnique, in linear time: its own compares every element with every other (indexOf), so a
 * body of 100,000 short strings held the event loop for half a minute before the size check refused it.
 */
export function UniqueItems(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'arrayUnique',
      validator: {
        validate: (value: unknown) => !Array.isArray(value) || new Set(value).size === value.length,
        defaultMessage: buildMessage((each) => `${each}$property's elements must be unique`, options),
      },
    },
    options,
  );
}

// Per DTO class, its top-level array fields' ArrayMaxSize (read once from class-validator's metadata).
const arrayLimits = new WeakMap<object, Array<[property: string, max: number]>>();

function arrayLimitsOf(dto: new (...args: never[]) => unknown): Array<[string, number]> {
  let limits = arrayLimits.get(dto);
  if (!limits) {
    limits = getMetadataStorage()
      .getTargetValidationMetadatas(dto, '', true, false)
      .filter((m) => m.name === 'arrayMaxSize')
      .map((m) => [m.propertyName, Number(m.constraints[0])] as [string, number]);
    arrayLimits.set(dto, limits);
  }
  return limits;
}

/**
 * An array field over its ArrayMaxSize is refused before anything else looks at its elements (each checked,
 * nested ones validated in turn): what a long array costs must not depend on how long it is.
 */
function refuseOversizedArrays(dto: new (...args: never[]) => unknown, value: object): void {
  const errors = arrayLimitsOf(dto).flatMap(([property, max]): FieldError[] => {
    const v = (value as Record<string, unknown>)[property];
    return Array.isArray(v) && v.length > max
      ? [{ field: property, message: `${property} must contain no more than ${max} elements` }]
      : [];
  });
  if (errors.length) throw validationFailed(errors);
}

// A field's type checks, with what to say when the value is not of that type (class-validator's own words for
// some of them, such as "must be a number conforming to the specified constraints", say less).
const TYPE_CHECKS: Array<[constraint: string, wrongType: (value: unknown) => boolean, message: string]> = [
  ['isString', (v) => typeof v !== 'string', 'must be a string'],
  ['isNumber', (v) => typeof v !== 'number' || !Number.isFinite(v), 'must be a number'],
  ['isInt', (v) => !Number.isInteger(v), 'must be an integer'],
  ['isBoolean', (v) => typeof v !== 'boolean', 'must be a boolean'],
  ['isObject', (v) => typeof v !== 'object' || v === null || Array.isArray(v), 'must be an object'],
  ['isArray', (v) => !Array.isArray(v), 'must be an array'],
];

/**
 * The one message that names a field's real fault. class-validator reports every constraint the value fails (a
 * missing prompt fails isString, isNotEmpty and maxLength alike), so: missing is "is required", then a wrong type,
 * then the first other constraint (range, length, pattern, allowed values).
 */
export function faultOf(e: Pick<ValidationError, 'property' | 'value' | 'constraints'>): string | undefined {
  const constraints = e.constraints ?? {};
  const failed = Object.keys(constraints);
  if (failed.length === 0) return undefined;
  // An optional field that is absent is never checked, so a failing absent field is a required one.
  if (e.value === undefined) return `${e.property} is required`;
  for (const [constraint, wrongType, message] of TYPE_CHECKS) {
    if (!(constraint in constraints)) continue;
    // On an array a scalar check is one made on each element: class-validator's "each value in … must be …" says so.
    if (Array.isArray(e.value) && constraint !== 'isArray' && constraint !== 'isObject') return constraints[constraint];
    if (wrongType(e.value)) return `${e.property} ${message}`;
  }
  return constraints[failed.find((c) => c !== 'nestedValidation') ?? failed[0]];
}

/** Flattens class-validator's tree into `{field: "simulate.fail_at_percent", message}` entries, one per field. */
export function fieldErrors(errors: ValidationError[], parent = ''): FieldError[] {
  return errors.flatMap((e) => {
    const field = parent ? `${parent}.${e.property}` : e.property;
    const message = faultOf(e);
    const own = message === undefined ? [] : [{ field, message }];
    // A field of the wrong type has no children worth naming.
    return message !== undefined ? own : own.concat(fieldErrors(e.children ?? [], field));
  });
}

export function validationFailed(errors: FieldError[]): DomainException {
  const fields = [...new Set(errors.map((e) => e.field))];
  const detail =
    fields.length === 1
      ? `The field ${fields[0]} is invalid: ${errors[0].message}.`
      : `${fields.length} fields are invalid: ${fields.join(', ')}.`;
  return new DomainException(ErrorCode.ValidationFailed, detail, errors);
}

/**
 * A DTO class with a plain check of its whole body, for bodies on a hot path (a worker's lease and complete):
 * class-transformer and class-validator's walk of the metadata cost more than the rest of such a request's
 * handling. `accepts` may only pass bodies class-validator passes (its unit tests compare the two); it may refuse
 * more, since whatever it refuses is validated as before.
 */
export interface FastChecked {
  accepts(body: unknown): boolean;
}

/** Validates bodies and queries against their DTO; a known field with a wrong type or range is a 422 naming it. */
@Injectable()
export class RequestValidationPipe extends ValidationPipe {
  constructor() {
    super({
      transform: true,
      whitelist: false,
      forbidUnknownValues: false,
      // The value is read by faultOf (missing or of the wrong type) and never leaves fieldErrors.
      validationError: { target: false, value: true },
      exceptionFactory: (errors) => validationFailed(fieldErrors(errors)),
    });
  }

  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type === 'body' && metadata.metatype && metadata.metatype !== Object) {
      value ??= {};
      if (typeof value !== 'object' || Array.isArray(value)) {
        throw new DomainException(ErrorCode.MalformedJson, 'The request body must be a JSON object.');
      }
      // A hot body whose DTO has a plain check (see FastChecked): taken as it is when the check passes; anything
      // else goes through class-validator, which writes the 422.
      if ((metadata.metatype as Partial<FastChecked>).accepts?.(value)) return value;
      refuseOversizedArrays(metadata.metatype as new () => unknown, value as object);
    }
    return super.transform(value, metadata);
  }
}
