-- Misuse corpus, part 2: losses, optimizers, schedulers and nn modules. Each bad
-- call must raise a Lua error naming the operation and what was wrong; the
-- process must survive every one of them.
local mg = require("moongrad")
local T = mg.test()
local nn = mg.nn
local nan = 0 / 0

local p = mg.zeros(3, {requires_grad = true})
local logits = mg.zeros(4, 5)
local function opt(name, hp) return mg.optim(name, {mg.zeros(2, {requires_grad = true})}, hp) end
local sgd = opt("sgd", {lr = 0.1})
local lin = nn.Linear(4, 3)
local seq = nn.Sequential{nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)}

local cases = {
  -- mg.loss
  {function() return mg.loss("no_such_loss") end, "no loss named 'no_such_loss' (available:", "unknown loss"},
  {function() return mg.loss(5) end, "loss: argument #1: expected a loss name (a string such as \"mse\"), got number", "loss name not a string"},
  {function() return mg.loss() end, "loss: argument #1: expected a loss name (a string such as \"mse\"), got no value", "loss without a name"},
  {function() return mg.loss("mse", {reduction = "avg"}) end, "mse: reduction must be one of", "mse unknown reduction"},
  {function() return mg.loss("mse", {reduction = 1}) end, "mse: option 'reduction' expects a string", "mse numeric reduction"},
  {function() return mg.loss("mse", {reductoin = "sum"}) end, "mse: unknown option 'reductoin' (accepted:", "mse misspelt option"},
  {function() return mg.loss("mse", "sum") end, "mse: options must be a table, got string", "loss options not a table"},
  {function() return mg.loss("smooth_l1", {beta = -1}) end, "smooth_l1: option 'beta'", "smooth_l1 negative beta"},
  {function() return mg.loss("smooth_l1", {beta = nan}) end, "smooth_l1: option 'beta' is NaN", "smooth_l1 NaN beta"},
  {function() return mg.loss("huber", {delta = 0}) end, "huber: option 'delta'", "huber delta 0"},
  {function() return mg.loss("huber", {delta = "big"}) end, "huber: option 'delta' expects", "huber string delta"},
  {function() return mg.loss("cross_entropy", {label_smoothing = 1.5}) end, "cross_entropy: option 'label_smoothing'", "label_smoothing > 1"},
  {function() return mg.loss("cross_entropy", {label_smoothing = nan}) end, "cross_entropy: option 'label_smoothing' is NaN", "label_smoothing NaN"},
  {function() return mg.loss("mse")(mg.zeros(3), mg.zeros(4)) end, "mse: input {3} and target {4} have different shapes", "mse shape mismatch"},
  {function() return mg.loss("l1")(mg.zeros(2, 3), mg.zeros(3, 2)) end, "l1: input {2,3} and target {3,2}", "l1 shape mismatch"},
  {function() return mg.loss("mse")(nil, mg.zeros(3)) end, "mse: argument #1 (prediction): expected a tensor, got nil", "mse nil prediction"},
  {function() return mg.loss("mse")(mg.zeros(3)) end, "mse: argument #2 (target): expected a tensor, got no value", "mse without target"},
  {function() return mg.loss("mse")(mg.zeros(3), {1, 2, 3}) end, "mse: argument #2 (target): expected a tensor, got table", "mse Lua table target"},
  {function() return mg.loss("mse")(mg.zeros(3), mg.zeros(3, {requires_grad = true})) end, "mse: the target requires grad", "mse target requiring grad"},
  {function() return mg.loss("cross_entropy")(logits, mg.tensor({1, 2, 6, 1})) end, "cross_entropy: target label 6 at position 3 is out of range (5 classes", "cross_entropy label too large"},
  {function() return mg.loss("cross_entropy")(logits, mg.tensor({0, 1, 1, 1})) end, "cross_entropy: target label 0 at position 1 is out of range", "cross_entropy label 0 (1-based)"},
  {function() return mg.loss("cross_entropy")(logits, mg.tensor({1, 1.5, 1, 1})) end, "cross_entropy: target label 1.5 at position 2 is not an integer", "cross_entropy fractional label"},
  {function() return mg.loss("cross_entropy")(logits, mg.tensor({1, 2, 3})) end, "cross_entropy: target must have shape {4}", "cross_entropy wrong label count"},
  {function() return mg.loss("cross_entropy")(logits, mg.tensor({1, 2, nan, 1})) end, "cross_entropy: target label", "cross_entropy NaN label"},
  {function() return mg.loss("cross_entropy")(mg.tensor(1), mg.tensor(1)) end, "cross_entropy: input must have a class dimension", "cross_entropy 0-dim input"},
  {function() return mg.loss("nll")(logits, mg.tensor({-1, 1, 1, 1})) end, "nll: target label -1 at position 1 is out of range", "nll negative label"},
  {function() return mg.loss("nll")(logits, mg.zeros(4, 5, 2)) end, "nll: target must have shape", "nll target with extra dims"},
  {function() return mg.loss("bce")(mg.zeros(3), mg.zeros(2)) end, "bce: input {3} and target {2}", "bce shape mismatch"},
  {function() return mg.loss("bce")(mg.tensor({1.5}), mg.tensor({1})) end, "loss bce: input values must be probabilities in [0, 1], element 1 is 1.5 (use bce_with_logits for logits)", "bce prediction outside [0, 1]"},
  {function() return mg.loss("bce_with_logits")(mg.zeros(3), "t") end, "bce_with_logits: argument #2 (target)", "bce_with_logits string target"},
  {function() return mg.loss("kl_div")(mg.zeros(2, 3), mg.zeros(3)) end, "loss kl_div: input {2,3} and target {3} have different shapes", "kl_div shape mismatch"},

  -- mg.optim
  {function() return mg.optim("no_such_opt", {p}) end, "no optimizer named 'no_such_opt' (available:", "unknown optimizer"},
  {function() return mg.optim("sgd", {p}, {lr = -1}) end, "sgd: option 'lr'", "sgd negative lr"},
  {function() return mg.optim("sgd", {p}, {lr = nan}) end, "sgd: option 'lr' is NaN", "sgd NaN lr"},
  {function() return mg.optim("sgd", {p}, {lr = "fast"}) end, "sgd: option 'lr' expects", "sgd string lr"},
  {function() return mg.optim("sgd", {p}, {lr = 0.1, momentom = 0.9}) end, "sgd: unknown option 'momentom' (accepted:", "sgd misspelt momentum"},
  {function() return mg.optim("sgd", {p}, {lr = 0.1, momentum = -0.5}) end, "sgd: option 'momentum'", "sgd negative momentum"},
  {function() return mg.optim("sgd", {p}, {lr = 0.1, nesterov = true}) end, "optim sgd: invalid options: nesterov momentum requires a momentum > 0 and zero dampening (momentum=0, dampening=0)", "sgd nesterov without momentum"},
  {function() return mg.optim("adam", {p}, {beta1 = 1.5}) end, "adam: option 'beta1'", "adam beta1 > 1"},
  {function() return mg.optim("adam", {p}, {beta2 = nan}) end, "adam: option 'beta2' is NaN", "adam NaN beta2"},
  {function() return mg.optim("adam", {p}, {eps = -1e-8}) end, "adam: option 'eps'", "adam negative eps"},
  {function() return mg.optim("adam", {p}, {amsgrad = 3}) end, "adam: option 'amsgrad' expects", "adam numeric amsgrad"},
  {function() return mg.optim("adamw", {p}, {weight_decay = -0.01}) end, "adamw: option 'weight_decay'", "adamw negative weight decay"},
  {function() return mg.optim("adamw", {p}, {lr = -math.huge}) end, "adamw: option 'lr'", "adamw -inf lr"},
  {function() return mg.optim("rmsprop", {p}, {alpha = -0.1}) end, "rmsprop: option 'alpha'", "rmsprop negative alpha"},
  {function() return mg.optim("rmsprop", {p}, {centred = true}) end, "rmsprop: unknown option 'centred'", "rmsprop misspelt centered"},
  {function() return mg.optim("adagrad", {p}, {lr_decay = -1}) end, "adagrad: option 'lr_decay'", "adagrad negative lr_decay"},
  {function() return mg.optim("adagrad", {p}, {eps = nan}) end, "adagrad: option 'eps' is NaN", "adagrad NaN eps"},
  {function() return mg.optim("sgd", {}, {lr = 0.1}) end, "sgd: got an empty parameter list", "optim with no parameters"},
  {function() return mg.optim("sgd", p, {lr = 0.1}) end, "optim sgd: argument #2: expected an array of parameter tensors, got tensor", "optim with a bare tensor"},
  {function() return mg.optim("sgd", nil, {lr = 0.1}) end, "sgd: argument #2: expected an array of parameter tensors, got nil", "optim with nil params"},
  {function() return mg.optim("sgd", {p, 5}, {lr = 0.1}) end, "sgd: parameter 2 is a number, not a tensor", "optim with a number param"},
  {function() return mg.optim("sgd", {p, p}, {lr = 0.1}) end, "sgd: parameter 2 is the same tensor as parameter 1", "optim duplicate parameter"},
  {function() return mg.optim("sgd", {p * 2}, {lr = 0.1}) end, "sgd: parameter 1 is not a leaf tensor", "optim non-leaf parameter"},
  {function() return mg.optim("sgd", {mg.zeros(2, 3):t():requires_grad_()}, {lr = 0.1}) end, "sgd: parameter 1 (shape {3,2}) is not contiguous", "optim non-contiguous parameter"},
  {function() return mg.optim("sgd", {p}, "fast") end, "sgd: options must be a table, got string", "optim options not a table"},
  {function() sgd.lr = -1 end, "sgd: option 'lr'", "setting a negative lr"},
  {function() sgd.lr = nan end, "sgd: option 'lr' is NaN", "setting a NaN lr"},
  {function() sgd.lr = "x" end, "sgd: option 'lr' expects", "setting a string lr"},
  {function() sgd.nosuch = 1 end, "sgd: unknown option 'nosuch'", "setting an unknown hyperparameter"},
  {function() sgd[1] = 1 end, "optim sgd: cannot set a number key", "setting a numeric key"},
  {function() return sgd:load_state_dict(5) end, "sgd: load_state_dict: expected a table, got number", "optim load_state_dict number"},
  {function() return sgd:load_state_dict(opt("adam", {}):state_dict()) end, "sgd: load_state_dict: the state is for optimizer 'adam'", "optim load_state_dict of another optimizer"},
  {function() local sd = sgd:state_dict(); sd.hparams = 5; return sgd:load_state_dict(sd) end, "sgd: load_state_dict: 'hparams' must be a table, got number", "optim load_state_dict bad hparams"},
  {function() local sd = sgd:state_dict(); sd.hparams.lr = -3; return sgd:load_state_dict(sd) end, "sgd: option 'lr'", "optim load_state_dict negative lr"},
  {function() local sd = sgd:state_dict(); sd.state = {[7] = {}}; return sgd:load_state_dict(sd) end, "sgd: load_state_dict: state key '7' is not a parameter index (1..1)", "optim load_state_dict state for a missing parameter"},
  {function() local o = opt("sgd", {lr = 0.1, momentum = 0.9}); local sd = o:state_dict(); sd.state = {{momentum_buffer = mg.zeros(5)}}; return o:load_state_dict(sd) end,
    "sgd: load_state_dict: state 'momentum_buffer' of parameter 1 has shape {5}, the parameter has {2}", "optim load_state_dict wrong state shape"},
  {function()
    local q = mg.zeros(2, {requires_grad = true})
    local o = mg.optim("sgd", {q}, {lr = 0.1})
    mg.no_grad(function() q.grad = mg.ones(2) end)
    q.grad = mg.ones(2)
    q.grad = nil
    rawset = rawset
    o:step()
    return true
  end, nil, "step with no gradient is a no-op"},
  {function() local q = mg.zeros(2, {requires_grad = true}); local o = mg.optim("adam", {q}); q.grad = mg.ones(2, {dtype = "float64"}) end, "grad assignment: gradient of dtype float64 for a float32 tensor (shape {2})", "a float64 gradient for a float32 parameter is refused, as PyTorch"},

  -- schedulers
  {function() return mg.optim.StepLR(sgd, 0) end, "StepLR: step_size must be a positive integer, got 0", "StepLR step 0"},
  {function() return mg.optim.StepLR(sgd, 2, nan) end, "StepLR: gamma must be a number", "StepLR NaN gamma"},
  {function() return mg.optim.StepLR({}, 2) end, "StepLR: expected an optimizer with a numeric 'lr' field", "StepLR without an optimizer"},
  {function() return mg.optim.CosineLR(sgd, -5) end, "CosineLR: t_max must be a positive integer, got -5", "CosineLR negative t_max"},
  {function() return mg.optim.CosineLR(sgd, 10, nan) end, "CosineLR: min_lr must be a number", "CosineLR NaN min_lr"},
  {function() return mg.optim.LinearWarmup(sgd, 1.5) end, "LinearWarmup: steps must be a positive integer, got 1.5", "LinearWarmup fractional steps"},
  {function() return mg.optim.StepLR(sgd, 2):load_state_dict(5) end, "StepLR:load_state_dict: expected a table, got number", "scheduler load_state_dict number"},

  {function() return mg.optim.StepLR(nil, 2) end, "StepLR: expected an optimizer with a numeric 'lr' field, got nil", "StepLR(nil)"},
  {function() return mg.optim.MultiStepLR(sgd, {3, 1}) end, "MultiStepLR: milestones must be increasing positive integers, got 1", "MultiStepLR decreasing milestones"},
  {function() return mg.optim.ReduceLROnPlateau(sgd, {factor = 2}) end, "ReduceLROnPlateau: factor must be in [0, 1), got 2", "ReduceLROnPlateau factor > 1"},
  {function() return mg.optim.ReduceLROnPlateau(sgd):step() end, "ReduceLROnPlateau:step: expected the metric as a number, got nil", "ReduceLROnPlateau:step without a metric"},
  {function() return mg.loss("cross_entropy", {weight = mg.ones(3)})(mg.zeros(2, 4), mg.ones(2)) end, "cross_entropy: weight must be a 1-D tensor with one value per class (4), got 3 values", "cross_entropy class weights of the wrong length"},
  {function() return mg.loss("cross_entropy")(mg.zeros(2, 0), mg.ones(2)) end, "cross_entropy: input {2,0} has no classes", "cross_entropy with zero classes"},
  {function() return mg.loss("bce", {weight = mg.ones(5)})(mg.full({2}, 0.5), mg.ones(2)) end, "bce: option 'weight' of shape {5} does not broadcast to the input's shape {2}", "bce weight shape"},

  -- nn constructors
  {function() return nn.Linear(0, 3) end, "Linear: in_features must be a positive integer, got 0", "Linear with 0 inputs"},
  {function() return nn.Linear(-4, 3) end, "Linear: in_features must be a positive integer, got -4", "Linear with negative inputs"},
  {function() return nn.Linear(4.5, 3) end, "Linear: in_features must be a positive integer, got 4.5", "Linear with fractional inputs"},
  {function() return nn.Linear("4", 3) end, "Linear: in_features must be a positive integer, got 4", "Linear with a string size"},
  {function() return nn.Linear(4, 3, {biass = false}) end, "Linear: unknown option 'biass'", "Linear misspelt option"},
  {function() return nn.Linear(2 ^ 40, 2 ^ 20) end, "tensor: shape {1048576,1099511627776} is too large", "Linear too large for the address space"},
  {function() return nn.Linear(2 ^ 20, 2 ^ 18) end, "cannot allocate", "Linear too large to allocate (1 TiB)"},
  {function() return nn.Conv2d(3, 8, 0) end, "Conv2d: kernel_size must be integers >= 1, got 0", "Conv2d kernel 0"},
  {function() return nn.Conv2d(3, 8, 3, {groups = 2}) end, "Conv2d: in_channels (3) and out_channels (8) must be divisible by groups (2)", "Conv2d bad groups"},
  {function() return nn.Conv2d(3, 8, 3, {stride = 2, padding = "same"}) end, "Conv2d: padding \"same\" needs stride 1", "Conv2d same padding with stride"},
  {function() return nn.Conv2d(3, 8, 3, {padding = -1}) end, "Conv2d: padding must be integers >= 0, got -1", "Conv2d negative padding"},
  {function() return nn.MaxPool2d(0) end, "MaxPool2d: kernel_size must be integers >= 1, got 0", "MaxPool2d kernel 0"},
  {function() return nn.MaxPool2d(2, {padding = 2}) end, "MaxPool2d: padding (2, 2) must be at most half the kernel size (2, 2)", "MaxPool2d padding too large"},
  {function() return nn.AvgPool2d(-1) end, "AvgPool2d: kernel_size must be integers >= 1, got -1", "AvgPool2d negative kernel"},
  {function() return nn.BatchNorm1d(0) end, "BatchNorm1d: num_features must be a positive integer, got 0", "BatchNorm1d of 0 features"},
  {function() return nn.BatchNorm2d(4, {eps = -1}) end, "BatchNorm2d: eps must be a positive number", "BatchNorm2d negative eps"},
  {function() return nn.BatchNorm2d(4, {momentum = 2}) end, "BatchNorm2d: momentum must be in [0, 1] or false, got 2", "BatchNorm2d momentum > 1"},
  {function() return nn.LayerNorm("x") end, "LayerNorm: normalized_shape must be a number or a list of sizes, got x", "LayerNorm string shape"},
  {function() return nn.Dropout(1.5) end, "Dropout: p must be a probability in [0, 1], got 1.5", "Dropout p > 1"},
  {function() return nn.Dropout(nan) end, "Dropout: p must be a probability in [0, 1]", "Dropout NaN p"},
  {function() return nn.Embedding(0, 4) end, "Embedding: num_embeddings must be a positive integer, got 0", "Embedding of 0 rows"},
  {function() return nn.Embedding(10, -4) end, "Embedding: embedding_dim must be a positive integer, got -4", "Embedding negative dim"},
  {function() return nn.LeakyReLU("x") end, "LeakyReLU: negative_slope must be a number, got string", "LeakyReLU string slope"},
  {function() return nn.Softmax() end, "Softmax: dim must be given as an integer", "Softmax without dim"},
  {function() return nn.Flatten("a") end, "Flatten: start_dim and end_dim must be integers", "Flatten string dim"},
  {function() return nn.Sequential{nn.ReLU(), 5} end, "Sequential: element 2 is a number, expected a module", "Sequential with a number"},
  {function() return nn.Sequential{fc = 1} end, "Sequential: expected a list of modules, got a table with key 'fc'", "Sequential with a named non-module"},
  {function() return nn.Sequential():add("relu") end, "Sequential:add: expected a module, got string", "Sequential:add string"},
  {function() return nn.LSTM(0, 4) end, "LSTM: input_size must be a positive integer, got 0", "LSTM of 0 inputs"},
  {function() return nn.GRU(4, 8, {dropout = 2}) end, "GRU: dropout must be in [0, 1], got 2", "GRU dropout > 1"},
  {function() return nn.Module:extend(5) end, "extend: the class name must be a string, got number", "extend with a number name"},
  {function() return nn.clip_grad_norm({p}, -1) end, "clip_grad_norm: max_norm must be a non-negative number, got -1", "clip_grad_norm negative max"},
  {function() return nn.clip_grad_norm({p}, nan) end, "clip_grad_norm: max_norm must be a non-negative number", "clip_grad_norm NaN max"},
  {function() return nn.clip_grad_norm({p, 3}, 1) end, "clip_grad_norm: element 2 is a number, expected a tensor", "clip_grad_norm with a number"},
  {function() return nn.clip_grad_norm({p}, 1, 0) end, "clip_grad_norm: norm_type must be a positive number", "clip_grad_norm norm_type 0"},
  {function() return nn.clip_grad_norm({p}, 1, nan) end, "clip_grad_norm: norm_type must be a positive number", "clip_grad_norm NaN norm_type"},
  {function() return nn.BatchNorm1d(4, {eps = nan}) end, "BatchNorm1d: eps must be a positive number", "BatchNorm1d NaN eps"},
  {function() return nn.BatchNorm1d(4, {momentum = nan}) end, "BatchNorm1d: momentum must be in [0, 1] or false", "BatchNorm1d NaN momentum"},
  {function() return nn.LSTM(4, 8, {dropout = nan}) end, "LSTM: dropout must be in [0, 1]", "LSTM NaN dropout"},

  -- nn forward with wrong inputs
  {function() return lin(mg.zeros(2, 5)) end, "Linear(4 -> 3): input {2,5} has 5 features in its last dim, expected 4", "Linear wrong features"},
  {function() return lin(nil) end, "Linear:forward: argument #1: expected a tensor, got nil", "Linear(nil)"},
  {function() return lin(5) end, "Linear:forward: argument #1: expected a tensor, got number", "Linear(number)"},
  {function() return lin(mg.tensor(1)) end, "linear: input of shape {} and weight of shape {3,4} do not match", "Linear(0-dim)"},
  {function() return seq(mg.zeros(2, 3)) end, "Linear(4 -> 3)", "Sequential wrong input names the layer"},
  {function() return nn.Conv2d(3, 8, 3)(mg.zeros(1, 4, 8, 8)) end, "Conv2d(3 -> 8): expected input (N, 3, H, W), got {1,4,8,8}", "Conv2d wrong channels"},
  {function() return nn.Conv2d(3, 8, 3)(mg.zeros(1, 3, 2, 2)) end, "conv2d: input of shape {1,3,2,2} is smaller than the kernel (weight shape {8,3,3,3}, padding {0,0}, dilation {1,1})", "Conv2d input smaller than kernel"},
  {function() return nn.MaxPool2d(2)(mg.zeros(4)) end, "max_pool2d: expected a 3-D (C,H,W) or 4-D (N,C,H,W) input, got shape {4}", "MaxPool2d on a 1-d input"},
  {function() return nn.BatchNorm1d(3)(mg.zeros(4, 5)) end, "BatchNorm1d(3): expected input (N, 3) or (N, 3, L), got {4,5}", "BatchNorm1d wrong features"},
  {function() return nn.BatchNorm2d(3)(mg.zeros(4, 3)) end, "BatchNorm2d(3): expected input (N, 3, H, W), got {4,3}", "BatchNorm2d 2-d input"},
  {function() return nn.LayerNorm(5)(mg.zeros(2, 4)) end, "LayerNorm({5}): input {2,4} does not end with the normalized shape", "LayerNorm wrong shape"},
  {function() return nn.Embedding(10, 4)(mg.tensor({11})) end, "embedding: index 11 is out of range for dim 1 of size 10", "Embedding index out of range"},
  {function() return nn.Embedding(10, 4)(mg.tensor({0.5})) end, "embedding: index 0.5 is not an integer (indices must be whole numbers)", "Embedding fractional index"},
  {function() return nn.LSTM(4, 8)(mg.zeros(5, 2, 3)) end, "LSTM: input {5,2,3} has 3 features, expected 4", "LSTM wrong features"},
  {function() return nn.LSTM(4, 8)(mg.zeros(5, 2, 4), mg.zeros(1, 2, 8)) end, "LSTM: the initial state must be a table {h0, c0}, got tensor", "LSTM state not a pair"},
  {function() return nn.LSTM(4, 8)(mg.zeros(5, 2, 4), {mg.zeros(1, 2, 7), mg.zeros(1, 2, 8)}) end, "LSTM: initial state 1 must have shape", "LSTM state wrong shape"},
  {function() return nn.GRU(4, 8)(mg.zeros(5, 2, 4), {}) end, "GRU: the initial state must be a tensor h0, got table", "GRU state not a tensor"},
  {function() return nn.GRU(4, 8)("x") end, "GRU:forward: argument #1: expected a tensor, got string", "GRU string input"},
  {function() return nn.Module:extend("Net")()(mg.zeros(1)) end, "Net: forward is not implemented (define Net:forward)", "module without forward"},

  -- state dicts
  {function() return lin:load_state_dict(5) end, "load_state_dict: expected a table of tensors, got number", "load_state_dict number"},
  {function() return lin:load_state_dict({weight = mg.zeros(3, 4)}) end, "load_state_dict: missing keys: bias", "load_state_dict missing bias (strict)"},
  {function() return lin:load_state_dict({weight = mg.zeros(3, 4), bias = mg.zeros(3), extra = mg.zeros(1)}) end, "load_state_dict: unexpected keys: extra", "load_state_dict unexpected key (strict)"},
  {function() return lin:load_state_dict({weight = mg.zeros(4, 3), bias = mg.zeros(3)}) end, "load_state_dict: size mismatch for weight: checkpoint has {4,3}, model has {3,4}", "load_state_dict transposed weight"},
  {function() return lin:load_state_dict({weight = "w", bias = mg.zeros(3)}) end, "load_state_dict: 'weight' is a string, expected a tensor", "load_state_dict string value"},
  {function() return seq:load_state_dict(lin:state_dict()) end, "load_state_dict: missing keys: 1.weight, 1.bias, 3.weight, 3.bias; unexpected keys: bias, weight", "load_state_dict of another model"},
  {function() return lin:load_state_dict({weight = mg.zeros(4, 3), bias = mg.zeros(3)}, false) end, "load_state_dict: size mismatch for weight: checkpoint has {4,3}, model has {3,4}", "non-strict load_state_dict still checks shapes"},
  {function() return lin:to("int8") end, "to: dtype must be \"float32\" or \"float64\", got int8", "module to an unknown dtype"},
  {function() return lin:register_parameter("w2", 5) end, "register_parameter: 'w2' must be a tensor, got number", "register_parameter number"},
  {function() return lin:add_module("a.b", nn.ReLU()) end, "bad name 'a.b'", "add_module dotted name"},
}

local n = T:raises_each(cases)
T:ok(n >= 100, ("at least 100 misuse cases here (%d)"):format(n))
-- still trains after every misuse
local w = mg.tensor({1.0}, {requires_grad = true})
local o = mg.optim("sgd", {w}, {lr = 0.5})
for _ = 1, 3 do o:zero_grad(); (w * w):sum():backward(); o:step() end
T:near(w, {0.0}, 1e-6, "training still works after every misuse")
T:done()
