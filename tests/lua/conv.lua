-- conv2d, max_pool2d, avg_pool2d: forward values against PyTorch, float64 gradchecks of
-- every option, misuse errors. Reference values were printed by PyTorch 1.13 (Debian's
-- python3-torch) with torch.set_default_dtype(torch.float64) and this script (S = sin, C = cos
-- of 1..n, as the S/C helpers below):
--[==[
import torch, torch.nn.functional as F
torch.set_default_dtype(torch.float64)
def S(n, *shape): return torch.arange(1., n+1).sin().view(*shape)
def Cs(n, *shape): return torch.arange(1., n+1).cos().view(*shape)
def lua(t): return "{" + ", ".join("%.12g" % v for v in t.flatten().tolist()) + "}"
x = S(2*3*5*5, 2,3,5,5); w = Cs(4*3*3*3, 4,3,3,3); b = torch.arange(1., 5)/10
print("conv_default =", lua(F.conv2d(x, w, b)))
x2 = S(2*7*7, 1,2,7,7); w2 = Cs(3*2*3*3, 3,2,3,3)
print("conv_s2p1d2 =", lua(F.conv2d(x2, w2, None, stride=2, padding=1, dilation=2)))
x3 = S(4*5*5, 1,4,5,5); w3 = Cs(6*2*3*3, 6,2,3,3); b3 = torch.arange(1., 7)/10
print("conv_groups =", lua(F.conv2d(x3, w3, b3, stride=(2,1), padding=(1,2), groups=2)))
print("conv_3d =", lua(F.conv2d(x[0], w, b, padding=1)))
xp = S(2*5*5, 1,2,5,5)
print("maxpool_k3s2p1 =", lua(F.max_pool2d(xp, 3, 2, 1)))
print("maxpool_k2 =", lua(F.max_pool2d(xp, 2)))
print("avgpool_k3s2p1 =", lua(F.avg_pool2d(xp, 3, 2, 1)))
print("avgpool_k2s1 =", lua(F.avg_pool2d(xp, 2, 1)))
# ties: constant input, overlapping windows; gradient of sum goes to the first max
c = torch.ones(1,1,4,4, requires_grad=True)
F.max_pool2d(c, 3, 1, 1).sum().backward()
print("maxpool_tie_grad =", lua(c.grad))
# conv backward reference (sum of outputs times a weight pattern)
xg = S(1*2*5*5, 1,2,5,5).requires_grad_(); wg = Cs(3*2*3*3, 3,2,3,3).requires_grad_(); bg = torch.tensor([0.1,0.2,0.3], requires_grad=True)
y = F.conv2d(xg, wg, bg, stride=2, padding=1)
(y * torch.arange(1., y.numel()+1).view(y.shape)).sum().backward()
print("convbw_gx =", lua(xg.grad)); print("convbw_gw =", lua(wg.grad)); print("convbw_gb =", lua(bg.grad))
# padding "same" (odd and even kernel extents) and "valid"
xs = S(2*6*7, 1,2,6,7); ws = Cs(3*2*4*3, 3,2,4,3)
print("conv_same =", lua(F.conv2d(xs, ws, None, padding="same")))
print("conv_same_d2 =", lua(F.conv2d(xs, ws, None, padding="same", dilation=(1, 2))))
print("conv_valid =", lua(F.conv2d(xs, ws, None, padding="valid")))
]==]
local mg = require("moongrad")
local T = mg.test()
local D = { dtype = "float64" }
local function S(n, ...) return mg.range(1, n, D):sin():view(...) end
local function C(n, ...) return mg.range(1, n, D):cos():view(...) end
local function rg(t) return t:requires_grad_() end

local R = {}
R.conv_default = {0.235544389464, 0.0603680463145, -0.0783708613889, 0.267069782739, 0.267623827775, 0.114065298592, 0.0592383699289, 0.23472903633, 0.286350448064, 0.322942944625, 0.468637519693, 0.36734799804, 0.00443828198841, 0.250900730237, 0.450565281846, -0.0338898732733, -0.0397602949316, 0.174803792859, 0.0926227997658, 0.182673063717, 0.380593171806, 0.247192551929, 0.102636014835, 0.139535015511, 0.477418247977, 0.305357537556, 0.128371131813, 0.398222911845, 0.199913983103, 0.185563215553, 0.626415927955, 0.46441462879, 0.243190816978, 0.53022836205, 0.636630005653, 0.525475113334, 0.27695154665, 0.135801202792, -0.0382646018075, 0.218348382098, 0.289762600839, 0.186709959504, -0.00980962522614, 0.171855745355, 0.287457275036, 0.220136268196, 0.437385211363, 0.43638328596, -0.0524094917581, 0.144121720686, 0.392027165436, 0.0366656756761, -0.0690863210227, 0.0725584048716, 0.111283282544, 0.125499931491, 0.300151138677, 0.329128834373, 0.142885827067, 0.101092865786, 0.505242215093, 0.385365369186, 0.187003996532, 0.490126685855, 0.264571272914, 0.163528407093, 0.635390165811, 0.547676573945, 0.32418982104, 0.443415891886, 0.619209246501, 0.593462630818}
R.conv_s2p1d2 = {-0.952571502062, 0.182957429747, 0.943879366176, 0.474617039418, 0.848143582627, -0.451630439188, 0.242680414535, -2.05914127473, -0.160998438561, -0.423527231669, 0.361357280146, 0.692496585925, 0.677850186674, 0.321908867892, -0.762242169886, -0.633789603607, -1.59894965568, 0.683184555957, 0.393247287127, 0.294263069706, -0.0293452339994, 0.420574568477, -0.423019974625, -0.55501204182, -1.07968414408, -0.0524850718426, 1.06323479279}
R.conv_groups = {0.316440107095, 0.506843948672, 0.248138733715, -0.249925059456, -0.426269366725, -0.413653292699, -0.169876931386, -0.0134717701212, -0.0598832658134, 0.0350859344543, 0.135084888307, 0.202826957653, 0.345732950537, 0.289829722918, 0.369421932844, 0.655733830269, 0.572097214849, 0.152858991341, -0.314977545034, -0.557001465237, -0.272282836693, 0.680140289878, 0.682660376122, 0.00130922687128, -0.264224619272, -0.102952491338, 0.0309630139018, 0.0792001634196, -0.0158809305798, -0.0449307811577, 0.178050083318, 0.253610190053, 0.27988133529, 0.317801675084, 0.288481629963, 0.676144236302, 0.887481428379, 0.391692759306, -0.0714776489313, -0.285052758725, -0.0480768084524, 0.175889634259, 0.71764920432, 0.530573472849, -0.110536408256, 0.0368545144891, 0.426180183056, 0.590417400236, 0.410344630492, 0.128372199215, 0.13641949149, 0.335926272086, 0.335714520141, 0.302667003085, 0.209839878097, 0.227022074357, 0.659390056684, 0.652177117263, 0.0810586487892, -0.111381446349, 0.0744006631028, 0.629382942139, 0.640441882013, 0.419095096386, 0.156028636526, -0.0256986995701, 0.385857960861, 0.810416746857, 1.04590947875, 0.762614621028, 0.434434678028, 0.474626685156, 0.480664516372, 0.416504870448, 0.33717072275, 0.145005623309, 0.19289641912, 0.341447157873, 0.162004021613, -0.0602435009582, 0.0335805204488, 0.464288921525, 1.0534390323, 0.900829702464, 0.124770194252, -0.0801985657068, 0.321074323577, 0.818925460841, 1.02355800021, 0.99491732436, 0.751367454514, 0.682084273195, 0.734177518614, 0.576944127863, 0.482148381735, 0.403765331113, 0.295293649563, 0.34818555814, 0.14803426517, -0.144941408921, 0.0120720513681, 0.412025314745, 0.892862098029, 1.03279726151, 0.757939686265, 0.085363883281, 0.0777417494033, 0.789403472219, 1.03532566009, 0.881011443686, 0.607694878198, 0.569349639222, 0.80603189777, 0.834635971316, 0.620950470086, 0.559919685933, 0.535738557694, 0.584652329738, 0.606612355854, 0.193735131251, -0.0137351979109, 0.415869547156, 0.850237170398, 1.0545378932, 0.650190835464, 0.439814066655}
R.conv_3d = {0.103408352355, -1.30468485401, -0.795882229773, 0.536590384943, 1.11176505764, 0.00675055702246, 0.235544389464, 0.0603680463145, -0.0783708613889, 0.176736857994, -0.0776304246321, 0.267069782739, 0.267623827775, 0.114065298592, -0.122790802914, 0.0924753740658, 0.0592383699289, 0.23472903633, 0.286350448064, -0.103131510105, 0.714405324442, -0.684790449309, -1.30764007755, -0.636311910153, 0.837051692989, 1.30479318854, 0.842776844863, -0.647804075341, -1.35891783853, -0.823187482043, 0.297226594563, 0.322942944625, 0.468637519693, 0.36734799804, 0.260668040698, -0.0844608133571, 0.00443828198841, 0.250900730237, 0.450565281846, 0.594594370496, -0.0586081465538, -0.0338898732733, -0.0397602949316, 0.174803792859, 0.363194962315, 1.30958309755, 1.67873585786, 0.60109810343, -0.845307397534, -1.23329371454, -0.348914284349, 1.32912473053, 1.69123517499, 0.774250415578, -0.113939513409, 0.336442119952, 0.0926227997658, 0.182673063717, 0.380593171806, 0.187816163731, 0.643834510923, 0.247192551929, 0.102636014835, 0.139535015511, 0.292238144254, 0.45862357766, 0.477418247977, 0.305357537556, 0.128371131813, 0.407780346341, -0.962709893063, 0.220798185415, 1.4732874333, 1.64706162591, 0.400389743671, -0.325647096538, -0.844071390494, 0.434936501959, 1.68182393563, 1.66504307471, 0.281481090416, 0.398222911845, 0.199913983103, 0.185563215553, 0.404878463876, 0.483566004512, 0.626415927955, 0.46441462879, 0.243190816978, 0.00994070808614, 0.565927940524, 0.53022836205, 0.636630005653, 0.525475113334, 0.173831393715, 0.0281900303183, -1.03246001033, -0.686623689566, 0.658249440168, 1.77463823428}
R.maxpool_k3s2p1 = {0.909297426826, 0.989358246623, 0.412118485242, 0.656986598719, 0.990607355695, 0.990607355695, 0.836655638536, 0.149877209663, 0.912945250728, 0.956375928405, 0.999911860107, 0.52908268612, 0.551426681242, 0.999911860107, 0.963795386284, 0.901788347649, 0.123573122745, 0.850903524534}
R.maxpool_k2 = {0.909297426826, 0.989358246623, -0.287903316665, 0.990607355695, 0.956375928405, 0.999911860107, -0.158622668805, 0.963795386284}
R.avgpool_k3s2p1 = {0.236482168017, 0.261342030018, -0.205292155069, -0.267588092508, 0.152239697346, 0.285757225622, -0.0468329421443, -0.369239733829, 0.00276581647624, 0.207369268311, 0.293785451108, -0.172307276854, -0.2847857964, 0.10738363263, 0.297601557003, -0.00553141625848, -0.369892061864, -0.0386135618693}
R.avgpool_k2s1 = {0.532084878038, 0.674190570057, 0.196448561154, -0.461907348905, -0.289748006008, 0.382484741042, 0.703062781097, 0.377248142551, -0.696465983274, -0.457197654956, 0.202416088853, 0.675929414061, -0.105374119825, -0.641864113029, -0.588227200823, 0.00622308707155, 0.466580853701, 0.694655064515, 0.284066612581, -0.38769137292, -0.37198198772, 0.301042246675, 0.697289627805, 0.452452140847, -0.67761530088, -0.523866461298, 0.111522786868, 0.644378499101, -0.0124456865816, -0.598244457281, -0.634020032902, -0.086880514206}
R.maxpool_tie_grad = {4, 2, 2, 0, 2, 1, 1, 0, 2, 1, 1, 0, 0, 0, 0, 0}
R.convbw_gx = {-23.8041142908, -28.0433781899, -25.0406244032, -29.3795567198, -26.2771345156, 49.9728156802, 58.5954944292, 52.4210871467, 61.2411078667, 54.8693586132, -27.513644628, -32.0519137796, -28.7501547404, -33.3880923095, -29.9866648528, 57.3176300797, 66.5323347416, 59.7659015461, 69.1779481791, 62.2141730126, -31.2231749652, -36.0604493693, -32.4596850776, -37.3966278993, -33.69619519, 26.8133253646, 31.097384728, 28.7492519718, 33.1893559477, 30.685178579, -58.2978837423, -67.2000379026, -62.1309893725, -71.3421095239, -65.9640950027, 32.6211051862, 37.3732983872, 34.5570317934, 39.4652696069, 36.4929584007, -69.7972006329, -79.6262527664, -73.6303062632, -83.7683243877, -77.4634118934, 38.4288850079, 43.6492120464, 40.3648116151, 45.7411832661, 42.3007382223}
R.convbw_gw = {-0.584641143025, 0.758288640705, -0.842225944769, -5.41204882049, -1.85479993872, -5.1041485184, -1.35739554826, 0.638359666227, -1.61498035, -1.24122553445, 0.707887800412, -1.422915279, -5.10825703778, -1.86921094292, -4.89107680489, -1.7862947681, 0.623294825246, -1.96798451265, 1.73362207267, 1.11807556414, 1.47603727093, -8.18315153925, -2.28486608261, -7.87525123717, 0.960867667438, 0.998146589661, 0.703282865694, 0.393982166516, 0.961666725912, 0.212292421964, -7.06287913384, -2.17256194536, -6.84569890095, -0.151087067139, 0.877073750746, -0.33277681169, 4.05188528837, 1.47786248757, 3.79430048662, -10.954254258, -2.7149322265, -10.6463539559, 3.27913088313, 1.35793351309, 3.02154608139, 2.02918986748, 1.21544565141, 1.84750012293, -9.01750122991, -2.47591294781, -8.80032099701, 1.48412063382, 1.13085267625, 1.30243088927}
R.convbw_gb = {45, 126, 207}

R.conv_same = {0.307399151933, -0.201038386761, -0.645021876938, -0.495975228129, 0.109068758115, 0.613835431145, 0.226153357699, -1.23820507315, -2.03261527206, 0.0277128305798, 2.06256188458, 2.20110105389, 0.31595806515, -1.33948186615, -1.4620396914, -0.653305058059, 1.61956732456, 2.403416978, 0.977576145788, -1.34704368654, -1.52191720422, -0.966264965422, 1.04755895997, 2.41427808352, 1.5613210711, -0.72710733369, -2.34703660911, -0.955271756211, 0.291737147159, 0.497264023068, -0.105527441543, -0.611297463063, -0.555043416186, 0.0115149878186, 0.391589839512, -0.142388331412, 1.58846430384, 1.6875756386, 0.235137713893, -1.43348474058, -1.78416793542, -0.170974694431, -0.384640790371, -0.722707806413, -0.463919273466, 0.221394500032, 0.703159191214, 0.538442564778, -0.0115481201452, -1.0185169624, 0.386036902855, 2.29917183829, 2.09845878877, -0.0315675936013, -2.132570876, -1.79929254741, 0.0671127714208, 1.92328649313, 2.40184579542, 0.67215915008, -1.67550751802, -2.48272030105, -0.870607294767, 1.11970990174, 2.51390314298, 1.32234208122, -1.08497419173, -2.49477019641, -1.61088598774, 0.486586943065, 0.105914938677, -0.232308082418, -0.700597408413, -0.524760708083, 0.1335385672, 0.669063099644, 0.582009182447, 1.14814061539, 1.58602662055, -0.040695428706, -1.63000228848, -1.72069256137, -0.229386028713, 1.10390594315, -0.633712249215, -0.412076573077, 0.251452243132, 0.683797026637, 0.487461977343, -0.157043365874, -0.235950297979, 0.374138045011, 2.36011277255, 1.92280802555, -0.282317552664, -2.22788167493, -2.12514165967, -0.186962387184, 1.51897534892, 2.28494056902, 0.418057805993, -1.83318537589, -2.39900637735, -0.759191979056, 0.783330528067, 1.91617983467, 1.0851309195, -1.29245858078, -2.48176762236, -1.38935095721, 0.980428570687, 1.3680716892, -0.201883360059, -0.694344446661, -0.488829984944, 0.166112510575, 0.668331929939, 0.556090055087, 0.102162315031, 1.11642262445, -0.242945908808, -1.72209993171, -1.61796321927, -0.0262785846506, 1.5895664595, 1.10748214875}
R.conv_same_d2 = {0.0984664427661, -0.26365151433, -0.632152157185, -0.539834739178, 0.0488042484536, 0.264481553202, 0.398136288948, -1.42319101668, -0.698696149794, -0.0184593446396, 1.66471009115, 1.81735274634, 0.819323113119, -0.548177726915, -1.01809289853, 0.289679183353, 1.29360894589, 1.97169270114, 0.837011279882, -0.155933890568, -1.28421357312, -0.111894045979, 1.13547572853, 1.96896874574, 1.30821705337, -0.555303364712, -1.05444093637, -1.38816528875, 0.389800397402, 0.154275858762, -0.109534798879, -0.623775758538, -0.564520162486, -0.162144058078, 0.215548761984, 0.525868255967, 1.09750698137, 1.3206249955, 0.158251934033, -1.14961722577, -1.07701294582, -0.745512622255, -0.343335832106, -0.373801611633, -0.296814179839, -0.0145358352186, 0.281106689266, 0.428068572444, 0.162966775074, -0.470237460645, 0.895261669621, 1.30456608898, 1.37796008081, 0.184463929128, -0.70502172584, -1.48440126057, 0.542839020236, 1.41974500268, 1.50904465308, 0.601581921421, -0.858972454453, -1.39306732288, -1.19483003088, 1.28873258285, 1.24543624661, 0.970778242741, -0.470892147343, -1.47962646879, -1.3954514645, -0.317168847103, 0.0567260627622, -0.304197906928, -0.307398834879, -0.371627976216, -0.0941840700701, 0.262407314375, 0.436441249504, 1.09428093896, 0.49997404515, 0.128048490906, -0.968026749171, -1.17410266034, -0.669625017972, 0.407466400074, -0.389738147658, -0.0534660787972, 0.380347468849, 0.52750314687, 0.189674864364, 0.0986738510616, -0.259882119188, 1.02426129814, 1.45819856245, 1.1251984419, -0.495706612697, -1.66086129364, -1.41743394475, -0.711125979484, 1.47861473202, 0.914772868468, -0.013398819955, -1.46133585662, -1.565727446, -1.02588593777, 0.270569940251, 1.20520066141, -0.0788999069481, -1.14540124304, -1.70770218062, -0.69994960881, -0.12940149762, 1.11909255531, -0.341676387417, -0.412344591152, -0.151249466393, 0.308502186437, 0.484618351788, 0.384759406337, 0.154709669967, 0.402473748908, -0.673349993038, -1.21199403198, -0.979485185112, 0.153557823818, 0.508931194998, 1.09119000847}
R.conv_valid = {-2.03261527206, 0.0277128305798, 2.06256188458, 2.20110105389, 0.31595806515, -0.653305058059, 1.61956732456, 2.403416978, 0.977576145788, -1.34704368654, 1.04755895997, 2.41427808352, 1.5613210711, -0.72710733369, -2.34703660911, 0.386036902855, 2.29917183829, 2.09845878877, -0.0315675936013, -2.132570876, 1.92328649313, 2.40184579542, 0.67215915008, -1.67550751802, -2.48272030105, 2.51390314298, 1.32234208122, -1.08497419173, -2.49477019641, -1.61088598774, 2.36011277255, 1.92280802555, -0.282317552664, -2.22788167493, -2.12514165967, 2.28494056902, 0.418057805993, -1.83318537589, -2.39900637735, -0.759191979056, 1.0851309195, -1.29245858078, -2.48176762236, -1.38935095721, 0.980428570687}

-- ---- forward values ---------------------------------------------------------------
local x = S(2 * 3 * 5 * 5, 2, 3, 5, 5)
local w = C(4 * 3 * 3 * 3, 4, 3, 3, 3)
local b = mg.range(1, 4, D) / 10
local y = mg.conv2d(x, w, b)
T:eq(table.concat(y:shape(), ","), "2,4,3,3", "conv2d output shape")
T:near(y, R.conv_default, 1e-10, "conv2d default options matches PyTorch")
local x2, w2 = S(2 * 7 * 7, 1, 2, 7, 7), C(3 * 2 * 3 * 3, 3, 2, 3, 3)
T:near(mg.conv2d(x2, w2, nil, { stride = 2, padding = 1, dilation = 2 }), R.conv_s2p1d2, 1e-10,
       "conv2d stride 2, padding 1, dilation 2, no bias")
local x3, w3 = S(4 * 5 * 5, 1, 4, 5, 5), C(6 * 2 * 3 * 3, 6, 2, 3, 3)
local y3 = mg.conv2d(x3, w3, mg.range(1, 6, D) / 10, { stride = { 2, 1 }, padding = { 1, 2 }, groups = 2 })
T:eq(table.concat(y3:shape(), ","), "1,6,3,7", "conv2d groups/asymmetric output shape")
T:near(y3, R.conv_groups, 1e-10, "conv2d groups 2, stride {2,1}, padding {1,2}")
local y3d = mg.conv2d(x[1], w, b, { padding = 1 })
T:eq(table.concat(y3d:shape(), ","), "4,5,5", "conv2d on a 3-D (C,H,W) input keeps 3 dims")
T:near(y3d, R.conv_3d, 1e-10, "conv2d 3-D input values")
T:near(mg.conv2d(x:float(), w:float(), b:float()), R.conv_default, 1e-5, "conv2d float32")
T:eq(mg.conv2d(x:float(), w, b):dtype(), "float64", "conv2d float32 input with float64 weight computes in float64")

local xs, ws = S(2 * 6 * 7, 1, 2, 6, 7), C(3 * 2 * 4 * 3, 3, 2, 4, 3)
T:near(mg.conv2d(xs, ws, nil, { padding = "same" }), R.conv_same, 1e-10, "conv2d padding \"same\" (even kernel height: extra row at the bottom)")
T:near(mg.conv2d(xs, ws, nil, { padding = "same", dilation = { 1, 2 } }), R.conv_same_d2, 1e-10, "conv2d padding \"same\" with dilation")
T:near(mg.conv2d(xs, ws, nil, { padding = "valid" }), R.conv_valid, 1e-10, "conv2d padding \"valid\"")

local xp = S(2 * 5 * 5, 1, 2, 5, 5)
T:near(mg.max_pool2d(xp, 3, { stride = 2, padding = 1 }), R.maxpool_k3s2p1, 1e-12, "max_pool2d k3 s2 p1")
T:near(mg.max_pool2d(xp, 2), R.maxpool_k2, 1e-12, "max_pool2d k2 (stride defaults to kernel)")
T:near(mg.avg_pool2d(xp, 3, { stride = 2, padding = 1 }), R.avgpool_k3s2p1, 1e-12,
       "avg_pool2d k3 s2 p1 (padding counted, as PyTorch's default)")
T:near(mg.avg_pool2d(xp, 2, { stride = 1 }), R.avgpool_k2s1, 1e-12, "avg_pool2d k2 s1")
T:near(mg.max_pool2d(xp:float(), { 2, 2 }), R.maxpool_k2, 1e-6, "max_pool2d float32, kernel as a pair")
T:eq(table.concat(mg.max_pool2d(xp[1], 2):shape(), ","), "2,2,2", "max_pool2d on a 3-D input")
T:near(mg.max_pool2d(xp, 4 / 2), R.maxpool_k2, 1e-12, "max_pool2d accepts an integral float kernel size")

-- ---- backward values -------------------------------------------------------------------
do
  local xg, wg, bg = rg(S(50, 1, 2, 5, 5)), rg(C(18 * 3, 3, 2, 3, 3)), rg(mg.tensor({ 0.1, 0.2, 0.3 }, D))
  local yg = mg.conv2d(xg, wg, bg, { stride = 2, padding = 1 })
  yg:backward(mg.range(1, yg:numel(), D):view(yg:shape()))
  T:near(xg.grad, R.convbw_gx, 1e-10, "conv2d input gradient matches PyTorch")
  T:near(wg.grad, R.convbw_gw, 1e-10, "conv2d weight gradient matches PyTorch")
  T:near(bg.grad, R.convbw_gb, 1e-10, "conv2d bias gradient matches PyTorch")
  local xf, wf, bf = rg(S(50, 1, 2, 5, 5):float()), rg(C(18 * 3, 3, 2, 3, 3):float()), rg(mg.tensor({ 0.1, 0.2, 0.3 }))
  local yf = mg.conv2d(xf, wf, bf, { stride = 2, padding = 1 })
  yf:backward(mg.range(1, yf:numel()):view(yf:shape()))
  T:near(xf.grad, R.convbw_gx, 1e-5, "conv2d float32 input gradient")
  T:near(wf.grad, R.convbw_gw, 1e-5, "conv2d float32 weight gradient")
  T:near(bf.grad, R.convbw_gb, 1e-6, "conv2d float32 bias gradient")
  for _, pool in ipairs({ "max_pool2d", "avg_pool2d" }) do
    local a64, a32 = rg(S(50, 2, 1, 5, 5)), rg(S(50, 2, 1, 5, 5):float())
    mg[pool](a64, 3, { stride = 2, padding = 1 }):sum():backward()
    mg[pool](a32, 3, { stride = 2, padding = 1 }):sum():backward()
    T:near(a32.grad, a64.grad, 1e-6, pool .. " float32 gradient equals the float64 one")
  end
  local c = rg(mg.ones(1, 1, 4, 4, D))
  mg.max_pool2d(c, 3, { stride = 1, padding = 1 }):backward(mg.ones(1, 1, 4, 4, D))
  T:near(c.grad, R.maxpool_tie_grad, 0, "max_pool2d ties: the gradient goes to the first maximum")
end

-- a batch larger than one column chunk (64K elements) gives the same values and gradients as
-- the images one at a time
do
  local xb, wb, bb = S(5 * 2 * 30 * 30, 5, 2, 30, 30), rg(C(3 * 2 * 3 * 3, 3, 2, 3, 3)), rg(mg.tensor({ 1, 2, 3 }, D))
  local yb = mg.conv2d(xb, wb, bb, { padding = 1 })
  local rows, gw_sum = {}, mg.zeros(3, 2, 3, 3, D)
  local gy = C(yb:numel(), yb:shape())
  yb:backward(gy)
  local gw_batch = wb.grad
  for i = 1, 5 do
    wb.grad = nil
    local yi = mg.conv2d(xb[i], wb, bb, { padding = 1 })
    rows[i] = yi
    yi:backward(gy[i])
    gw_sum = gw_sum + wb.grad
  end
  T:near(yb, mg.stack(rows, 1), 1e-12, "conv2d over several column chunks equals per-image results")
  T:near(gw_batch, gw_sum, 1e-10, "conv2d weight gradient over several column chunks equals the per-image sum")
end

-- ---- gradchecks (float64) --------------------------------------------------------------------
local function gc(name, fn, inputs, opts) return T:gradcheck(name, fn, inputs, opts) end
local conv = function(o) return function(a, k, c) return mg.conv2d(a, k, c, o) end end
gc("conv2d default", conv(nil), { rg(S(32, 1, 2, 4, 4)), rg(C(16, 2, 2, 2, 2)), rg(mg.tensor({ 0.5, -0.5 }, D)) })
gc("conv2d batch 2, no bias", conv(nil), { rg(S(36, 2, 2, 3, 3)), rg(C(12, 3, 2, 1, 2)) })
gc("conv2d stride 2 padding 1", conv({ stride = 2, padding = 1 }),
   { rg(S(32, 1, 2, 4, 4)), rg(C(36, 2, 2, 3, 3)), rg(mg.tensor({ 0.1, 0.2 }, D)) })
gc("conv2d dilation 2", conv({ dilation = 2 }), { rg(S(50, 1, 2, 5, 5)), rg(C(16, 2, 2, 2, 2)) })
gc("conv2d asymmetric stride/padding/dilation", conv({ stride = { 1, 2 }, padding = { 2, 1 }, dilation = { 2, 1 } }),
   { rg(S(30, 1, 2, 3, 5)), rg(C(24, 2, 2, 2, 3)) })
gc("conv2d groups 2", conv({ groups = 2, padding = 1 }),
   { rg(S(36, 1, 4, 3, 3)), rg(C(32, 4, 2, 2, 2)), rg(mg.tensor({ 1, 2, 3, 4 }, D)) })
gc("conv2d depthwise (groups = channels)", conv({ groups = 3 }), { rg(S(27, 1, 3, 3, 3)), rg(C(12, 3, 1, 2, 2)) })
gc("conv2d padding \"same\", even kernel", conv({ padding = "same" }), { rg(S(20, 1, 1, 4, 5)), rg(C(12, 2, 1, 2, 3)) })
gc("conv2d 3-D input", conv({ padding = 1 }), { rg(S(18, 2, 3, 3)), rg(C(8, 1, 2, 2, 2)) })
gc("conv2d non-contiguous input and weight", function(a, k) return mg.conv2d(a:transpose(3, 4), k:transpose(3, 4)) end,
   { rg(S(32, 1, 2, 4, 4)), rg(C(16, 2, 2, 2, 2)) })
gc("max_pool2d k2", function(a) return mg.max_pool2d(a, 2) end, { rg(S(32, 1, 2, 4, 4)) })
gc("max_pool2d k3 s2 p1", function(a) return mg.max_pool2d(a, 3, { stride = 2, padding = 1 }) end, { rg(S(50, 2, 1, 5, 5)) })
gc("max_pool2d k{2,3} s{1,2} p{1,1}", function(a) return mg.max_pool2d(a, { 2, 3 }, { stride = { 1, 2 }, padding = { 1, 1 } }) end,
   { rg(S(20, 1, 1, 4, 5)) })
gc("max_pool2d non-contiguous", function(a) return mg.max_pool2d(a:transpose(3, 4), 2) end, { rg(S(24, 1, 1, 4, 6)) })
gc("avg_pool2d k2", function(a) return mg.avg_pool2d(a, 2) end, { rg(S(32, 1, 2, 4, 4)) })
gc("avg_pool2d k3 s2 p1", function(a) return mg.avg_pool2d(a, 3, { stride = 2, padding = 1 }) end, { rg(S(50, 2, 1, 5, 5)) })
gc("avg_pool2d 3-D, non-contiguous", function(a) return mg.avg_pool2d(a:transpose(2, 3), { 2, 1 }, { stride = 1 }) end,
   { rg(S(24, 2, 4, 3)) })

-- ---- misuse ------------------------------------------------------------------------------------
local x4, w4 = mg.zeros(2, 3, 8, 8), mg.zeros(8, 1, 5, 5)
T:raises(function() mg.conv2d(x4, w4) end, "conv2d: input has 3 channels but weight expects 1 (weight shape {8,1,5,5})",
         "conv2d channel mismatch")
T:raises(function() mg.conv2d(mg.zeros(8, 8), w4) end, "conv2d: expected a 3-D (C,H,W) or 4-D (N,C,H,W) input, got shape {8,8}",
         "conv2d 2-D input")
T:raises(function() mg.conv2d(x4, mg.zeros(8, 3, 5)) end, "conv2d: expected a 4-D weight", "conv2d 3-D weight")
T:raises(function() mg.conv2d(x4, mg.zeros(8, 3, 3, 3), mg.zeros(4)) end,
         "conv2d: bias of shape {4} does not match out_channels 8 (weight shape {8,3,3,3})", "conv2d bias shape")
T:raises(function() mg.conv2d(mg.zeros(1, 4, 5, 5), mg.zeros(3, 2, 3, 3), nil, { groups = 2 }) end,
         "conv2d: out_channels 3 (weight shape {3,2,3,3}) is not divisible by groups 2", "conv2d groups vs out_channels")
T:raises(function() mg.conv2d(mg.zeros(1, 3, 5, 5), mg.zeros(4, 2, 3, 3), nil, { groups = 2 }) end,
         "conv2d: input has 3 channels but weight expects 4 (weight shape {4,2,3,3}, groups 2)", "conv2d groups vs channels")
T:raises(function() mg.conv2d(x4, mg.zeros(8, 3, 3, 3), nil, { stride = 0 }) end, "conv2d: stride {0,0}", "conv2d stride 0")
T:raises(function() mg.conv2d(x4, mg.zeros(8, 3, 3, 3), nil, { padding = -1 }) end, "padding {-1,-1} >= 0", "conv2d negative padding")
T:raises(function() mg.conv2d(mg.zeros(1, 3, 4, 4), mg.zeros(2, 3, 5, 5)) end,
         "conv2d: input of shape {1,3,4,4} is smaller than the kernel (weight shape {2,3,5,5}", "conv2d kernel larger than input")
T:raises(function() mg.conv2d(x4, mg.zeros(8, 3, 3, 3), nil, { strides = 2 }) end,
         "conv2d: unknown option 'strides' (accepted: stride, padding, dilation, groups)", "conv2d unknown option")
T:raises(function() mg.conv2d(x4, mg.zeros(8, 3, 3, 3), nil, { stride = { 1, 2, 3 } }) end,
         "conv2d: stride must be an integer or a {h, w} pair of integers", "conv2d stride triple")
T:raises(function() mg.conv2d(x4, mg.zeros(8, 3, 3, 3), nil, { groups = 1.5 }) end,
         "conv2d: groups must be a positive integer, got 1.5", "conv2d fractional groups")
T:raises(function() mg.conv2d(x4, mg.zeros(8, 3, 3, 3), nil, { padding = "same", stride = 2 }) end,
         "conv2d: padding \"same\" needs stride 1, got {2,2}", "conv2d padding same with stride")
T:raises(function() mg.conv2d(x4, mg.zeros(8, 3, 3, 3), nil, { padding = "full" }) end,
         "conv2d: padding must be sizes, \"valid\" or \"same\", got \"full\"", "conv2d unknown padding mode")
T:raises(function() mg.conv2d(x4, "w") end, "conv2d: argument #2: expected a tensor, got string", "conv2d weight not a tensor")
T:raises(function() mg.max_pool2d(mg.zeros(4, 4), 2) end,
         "max_pool2d: expected a 3-D (C,H,W) or 4-D (N,C,H,W) input, got shape {4,4}", "max_pool2d 2-D input")
T:raises(function() mg.max_pool2d(x4, 2, { padding = 2 }) end,
         "max_pool2d: padding {2,2} must be >= 0 and at most half the kernel size {2,2}", "max_pool2d padding too large")
T:raises(function() mg.avg_pool2d(x4, 0) end, "avg_pool2d: kernel size {0,0} must be >= 1", "avg_pool2d kernel 0")
T:raises(function() mg.avg_pool2d(x4, 9) end, "avg_pool2d: input of shape {2,3,8,8} is smaller than the kernel {9,9}",
         "avg_pool2d kernel larger than input")
T:raises(function() mg.max_pool2d(x4, 2.5) end, "max_pool2d: kernel size must be an integer or a {h, w} pair of integers, got 2.5",
         "max_pool2d fractional kernel")
T:raises(function() mg.max_pool2d(x4) end, "max_pool2d: argument #2: expected a kernel size, got no value", "max_pool2d no kernel")
T:raises(function() mg.max_pool2d(x4, 2, { dilation = 2 }) end, "max_pool2d: unknown option 'dilation'", "max_pool2d unknown option")

T:done()
