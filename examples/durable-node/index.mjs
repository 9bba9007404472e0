// Two Lambda durable functions written with AWS's durable-execution SDK for
// JavaScript, exactly as they would be deployed to AWS Lambda. sagaflow
// hosts them unchanged: `bootstrap` starts AWS's Node.js runtime interface
// client, which serves the handler named in `_HANDLER`.
//
// `handler` (an order): a step, a wait, a child context holding a step and a
// chained invoke of `doubler`, a callback an approver completes, and a last
// step. Every wait, invoke and callback ends the invocation; the next one
// replays the operations already checkpointed (their results come from the
// checkpoint, their code does not run again) and carries on.

import { withDurableExecution } from "@aws/durable-execution-sdk-js";

const DOUBLER = process.env.DOUBLER_FUNCTION ?? "node-doubler";

export const handler = withDurableExecution(async (event, context) => {
  const order = await context.step("reserve", async () => {
    console.log(`reserving order ${event.orderId}`);
    return {
      orderId: event.orderId,
      total: event.items.reduce((sum, item) => sum + item.price * item.quantity, 0),
    };
  });

  await context.wait("cool-off", { seconds: 1 });

  const pricing = await context.runInChildContext("pricing", async (child) => {
    const tax = await child.step("tax", async () => Math.round(order.total / 10));
    const doubled = await child.invoke("double-total", DOUBLER, {
      value: order.total + tax,
    });
    return { tax, doubled };
  });

  const [approval] = await context.createCallback("approval", {
    timeout: { minutes: 5 },
  });
  const decision = JSON.parse(await approval);

  return context.step("confirm", async () => ({
    orderId: order.orderId,
    total: order.total,
    tax: pricing.tax,
    doubled: pricing.doubled,
    approvedBy: decision.approver,
    status: decision.approved ? "CONFIRMED" : "REJECTED",
  }));
});

// The target of the chained invoke: a durable function of one step.
export const doubler = withDurableExecution(async (event, context) =>
  context.step("double", async () => event.value * 2),
);
