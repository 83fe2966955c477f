import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { DomainException, ErrorCode } from '../common/errors.js';
import { Delivery, DeliveryAttempt } from './delivery.entity.js';

/** Read side of the outbox: deliveries and attempts as a tenant may see them. */
@Injectable()
export class DeliveryLog {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  forTask(tenantId: string, taskId: string): Promise<Delivery[]> {
    return this.db
      .getRepository(Delivery)
      .find({ where: { tenantId, taskId }, order: { sequence: 'ASC', createdAt: 'ASC' } });
  }

  lastForTask(taskId: string): Promise<Delivery | null> {
    return this.db.getRepository(Delivery).findOne({ where: { taskId }, order: { updatedAt: 'DESC', id: 'DESC' } });
  }

  async get(
    tenantId: string,
    id: string,
  ): Promise<{ delivery: Delivery; attempts: DeliveryAttempt[]; batch: Delivery[] }> {
    const delivery = await this.db.getRepository(Delivery).findOneBy({ id, tenantId });
    if (!delivery) throw new DomainException(ErrorCode.DeliveryNotFound, `No delivery with id ${id}.`);
    // A batch's attempts are recorded once, on its carrier (whose id is the batch's): every event of it shows them.
    const attempts = await this.db
      .getRepository(DeliveryAttempt)
      .find({ where: { deliveryId: delivery.batchId ?? id }, order: { number: 'ASC' } });
    // The events its batch request carried, in the order they were sent.
    const batch = delivery.batchId
      ? await this.db
          .getRepository(Delivery)
          .find({ where: { batchId: delivery.batchId, tenantId }, order: { id: 'ASC' } })
      : [];
    return { delivery, attempts, batch };
  }
}
