; Calls: layer constructors, functional ops, helper calls and every other call the rules look at.

; nn.Conv2d(3, 64, kernel_size=3)   torch.matmul(q, k)   self.relu(x)   conv3x3(inplanes, planes)
(call
  function: (_) @call.callee
  arguments: (_) @call.args) @call

; ALL_ATTENTION_FUNCTIONS.get_interface(impl, eager_attention_forward)  (a function passed by name)
(argument_list
  (identifier) @arg.ident)
