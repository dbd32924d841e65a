; Calls: layer constructors, functional ops, helper calls and every other call the rules look at.

; conv3x3(inplanes, planes)   Linear(d_model, dim_feedforward)   super()
(call
  function: (identifier) @call.name) @call

; nn.Conv2d(3, 64, kernel_size=3)   torch.matmul(q, k)   self.relu(x)   x.bmm(y)
(call
  function: (attribute) @call.attr) @call
