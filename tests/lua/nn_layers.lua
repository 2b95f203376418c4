-- mg.nn layer forwards against reference values computed by PyTorch 1.13 in float64.
-- Inputs and parameters are gen(k, shape): element i (1-based, row-major) = 0.9 * sin(1.3 k + 0.7 i),
-- computed identically here and in the generator script at the end of this file, whose output
-- is the table R below (printed with %.17g).
local mg = require("moongrad")
local T = mg.test()
local nn = mg.nn
local F64 = { dtype = "float64" }

local function gen(k, ...)
  local shape, n = { ... }, 1
  for _, s in ipairs(shape) do n = n * s end
  local v = {}
  for i = 1, n do v[i] = math.sin(k * 1.3 + 0.7 * i) * 0.9 end
  return mg.tensor(v, F64):view(shape)
end
local function set(p, t) mg.no_grad(function() p:copy_(t) end) end
local function flat(t) return t:contiguous():view(-1):totable() end
local TOL = 1e-10

local R = {
  linear = {-1.0655222254161136, -1.4835419098871974, 0.66134652505568958, 0.17719842001559094, 0.39233534068504661, -0.37224292355179517, -1.9185809696398666, 1.6708321253744296},
  conv_s2p1 = {1.4106703793613988, -0.52540340224467286, 1.782886002613326, 1.1656298726504499, -1.6827018593040206, -0.5094536873529506, -1.2292999323245097, -3.2763682871169464, -0.44857485445315615, 0.95162536388666841, -1.1154399110045281, 1.1430877561265314, 0.6249488481172778, -2.3112230784467878, -1.1406784621905457, -1.7513901189704653, -3.8609987666675951, -1.0114446009753402, 0.39738531977853703, -1.7983339510441976, 0.40787796978117369, -0.010557789772300985, -3.0312496025883195, -1.8647322278224006, -2.3656186859597894, -4.5353820199283907, -1.6672894796895652, 0.66769172996006942, 1.6762255412698885, -0.27843968165544597, 1.7510206674724667, 3.3235421335226749, 1.9033016948742887, 3.8419692257210687, 4.0393936108782027, 0.79110276080029218, 0.13854856929468318, 1.279875655731344, -0.68679875900033138, 1.2882513427060265, 2.9351851078724844, 1.4552977643645963, 3.3328324216150502, 3.5973455324258246, 0.27985817877668667, -0.48487016918717335, 0.78795954661079071, -1.1885000874694471, 0.72990632288787261, 2.4493899867111582, 0.91152923786555862, 2.7258078508845465, 3.0571105682529085, -0.32582177806750034},
  conv_d2g2 = {-0.24365779509277935, -1.5014569429229008, -2.0530974295844855, -1.6391341145802183, -1.6733747641068084, -0.47295058376518401, 0.94990964617793017, 1.9260125267759103, -0.37988797341039471, 1.0088082406253922, 1.923046176031477, 1.9328454464245803, 1.9617173110426078, 1.1010231999183495, -0.27749932608957262, -1.525509582990993, 1.0942778995200444, 1.9581817140612023, 1.9011220710460752, 0.94993501216618637, 0.97589408766020325, -0.44438812494404673, -1.6556676586311183, -2.0882608219431789, -0.52032636922844988, -1.6769807826367149, -2.0449249304233841, -1.4511089305984846, -1.5073379904218722, -0.25083253385213389, 1.1236433827547221, 1.969652259039862},
  maxpool2 = {0.28038722716204006, 0.8904224219610436, 0.7732456333708454, 0.88809476784715202, 0.88268692297063767, 0.32315251861994848, 0.5500396316363364, 0.79548338119124762, 0.80918751613012385, 0.87270581062072872, 0.8688839734167676, 0.51342087027364036, 0.86481647905105841, 0.82802343437711157, 0.48827681912427257, 0.85594918792893726},
  maxpool3s2p1 = {0.28038722716204006, 0.8904224219610436, 0.8904224219610436, 0.7732456333708454, 0.88809476784715202, 0.58525905614140517, 0.88551602515675498, 0.88551602515675498, 0.30898343593790584, 0.88268692297063767, 0.56193942187475476, 0.7882929718298004, 0.88268692297063767, 0.79548338119124762, 0.87960826115303281, 0.5500396316363364, 0.87628091012548026, 0.87628091012548026, 0.80918751613012385, 0.87270581062072872, 0.52577692597195702, 0.8688839734167676, 0.87270581062072872, 0.52577692597195702, 0.8688839734167676, 0.8688839734167676, 0.82197659836094827, 0.86481647905105841, 0.82802343437711157, 0.86050447751502968, 0.48827681912427257, 0.85594918792893726, 0.86050447751502968, 0.41955696556845484, 0.85594918792893726, 0.85594918792893726},
  avgpool2 = {-0.14909186807018568, -0.0037335459381691583, -0.097995472522965865, 0.096159826457220696, -0.054108489953032357, -0.14779664013511831, -0.13319532437131335, -0.092098350368007897, 0.12534473798074375, -0.061131432609885961, 0.039538718363007208, -0.13657994369040388, 0.10911977933552147, 0.12096728148916377, 0.15054807417732557, 0.032156154730317077},
  avgpool3s2p1 = {-0.066263052475638073, -0.033012282288247832, 0.041864601978030797, -0.10358306568749266, -0.21789852373964141, -0.057459612263192024, 0.022937910783069379, -0.058126982155837892, -0.065897930460636439, -0.024048217756903269, -0.089120382334961848, -0.04181815336344457, 0.10131611637334879, -0.082741137010404434, -0.16246776647246317, 0.066425174535333309, 0.054512684049653336, -0.026136381059498805, 0.055708772435886109, -0.0061008645537025986, -0.060217750049321665, 0.14804867538688388, 0.1815850996163664, -0.013844229132338836, 0.0062147649296273588, 0.082051504920666193, 0.054427197464282699, 0.048497679704676208, 0.08644283534851667, 0.015389791652444782, -0.036340524612542724, 0.162435192169534, 0.15639181220947979, -0.063697638960282868, -0.018501925607181741, 0.050023385478028502},
  bn1_train = {0.96395217744427641, 0.5188274938251517, 0.44245442550659614, 0.6474740219554207, 1.6388938449050663, 1.7721386519143334, 0.68643632627081719, 0.79160708246834277, -0.62396228368300466, 0.96357454663994868, 0.52703957437883797, 0.46567793703803423},
  bn1_rm = {-0.022463952318827717, -0.015541529976061015, -0.0013096832424483213},
  bn1_rv = {0.96029807517208399, 0.95004649255407458, 0.94070149897559363},
  bn1_rm2 = {0.058895659115107399, 0.03599254382586789, 0.019677354047862926},
  bn1_rv2 = {1.0598337484505111, 1.0175805055761518, 1.0422665541366178},
  bn1_eval = {0.95347337949871525, 0.5694950417393414, 0.44804992054752257, 0.74674029937895203, 1.2497637073854184, 1.1676645432279382, 0.77219165215002539, 0.73516684020277878, -0.1290863969049228, 0.95322669966324225, 0.57448262222959368, 0.4606183019392151},
  bn1_3d = {-0.57718042663137425, -1.148260222737004, -1.0791450259788862, -0.40234079334710382, -0.00086601958111844556, 0.85364122244965701, 1.1302358553216854, 0.6988311012848909, 0.66489196707997189, -0.41353099353289241, -1.0543929600505721, -0.95628653587534962, -0.38081307972054157, 0.58685467847983475, 1.3786657795834802, 1.6222190903515947, 0.68082821579175556, -0.26298232061907106, -1.2595399661592637, -1.8401480884885346, -0.94447644116398011, -0.14042621745631081, 0.97273955677788648, 1.8714816242212473},
  bn1_3d_rv = {0.94617707886193103, 0.94059007094801561, 0.93498191248922247},
  bn2_train = {0.79352129226376911, 0.82324919784690087, 0.87009795216550401, 0.91203385403156056, 1.8310464835877058, 1.6357808218055623, 1.1187570827841757, 0.52313960970407525, -0.8826253779921277, -0.89269874892390988, -0.35714766950902815, 0.47214981938724848, 0.91279946855720373, 0.92934779149248425, 0.91311713673546158, 0.87174103482933996, 0.51028473322456935, 0.1239361376892195, 0.12687364307937149, 0.51771569471024936, 0.49250880227709948, 1.2184055948061208, 1.4970414779102734, 1.1973696419598925},
  bn2_rm = {0.072002865555729809, -0.04702907990278888, 0.016620833935268375},
  bn2_rv = {0.81773488068479949, 0.83522092426763705, 0.84660591901231053},
  bn2_eval = {0.83177055192660054, 0.85103504975348288, 0.88139432693966258, 0.90856994104768785, 1.4343263135006001, 1.3001445640680718, 0.94485859536847583, 0.53556494997762893, -0.49034541026336825, -0.49750446760258382, -0.11689296112928792, 0.47248157044328776, 0.90906608025010271, 0.91978984719472567, 0.90927193793868444, 0.88245908955196095, 0.52673139573661953, 0.261242164467826, 0.26326074576174463, 0.53183776929464288, 0.48695052297800445, 1.0028390765973159, 1.2008631816773696, 0.98788900738701435},
  ln = {-1.7444894979251091, -0.5669146373951709, 0.83921202213060153, 1.0129435910114604, 0.12920423204147824, 0.10553222905763987, -0.10497229405784425, 0.53133819767005208, -1.6012174353616229, -0.79813592360122343, 0.66843531721609994, 1.0697385923187521, -0.036510040923634267, 0.31573016448582486, 0.072590016279673861, 0.48460749037563322, -1.3659435360790466, -1.0315427809770916, 0.43901891858634917, 1.1145467499117945, -0.47619705490271441, 0.61760026683978453, 0.45447931682550313, 0.44536303438827879},
  ln2 = {0.77198785644076229, -0.24128116486955548, -1.1090258205448489, -1.4231322401367648, -1.0358712664630294, -0.1293777865620355, 0.87001015161743755, 1.4922647848822905, 1.4447300362112112, 0.74976224065514496, -0.26578438836453655, -1.1242824028660754, -1.2199677792557599, -0.8301656681765669, 0.053947662088038188, 1.0165598976627537, 1.6049394629257043, 1.5423622546494087, 0.85825931168205949, -0.12562506249544161, -0.94655467309000785, -1.218433496859997, -0.81339267476258248, 0.078070765632391112},
  emb = {0.61840903158426985, 0.051738730294432107, -0.53926510429283869, 0.23767966924602249, 0.74099970066427168, 0.89581599442040349, -0.87309516033646617, -0.8084864183016206, -0.36363388079075853, -0.87309516033646617, -0.8084864183016206, -0.36363388079075853},
  relu = {2.6999831057139558, 2.0712141521159317, 0.46832081916390872, 0, 0, 0, 0, 0.49419646824758767, 2.0879853018287955, 2.6997620222896215},
  leaky = {2.6999831057139558, 2.0712141521159317, 0.46832081916390872, -0.27096622255111003, -0.50815696050519488, -0.50635353976215192, -0.26640413727666029, 0.49419646824758767, 2.0879853018287955, 2.6997620222896215},
  sigmoid = {0.93702564704246971, 0.88807370358357363, 0.61498623988167933, 0.20508166625307575, 0.073048015062529448, 0.073660936728339579, 0.20882531642577304, 0.62109451355557144, 0.88972991755631758, 0.9370125999621477},
  tanh = {0.99100715119392513, 0.9687282618028803, 0.43684157024240444, -0.87518877593329414, -0.987656348230462, -0.98743313228489182, -0.86974233359378517, 0.45754076075834477, 0.96974418628415415, 0.99100319186621311},
  gelu = {2.690621859663441, 2.0315102323482401, 0.31856231570906307, -0.11886703673322431, -0.014051044588935607, -0.014366408283641311, -0.12178224968796401, 0.34070709227023493, 2.0495672486422842, 2.6903953206571249},
  softmax = {0.60123882558362041, 0.3206093110535862, 0.064542889053545327, 0.010424700283316929, 0.0031842740259309704, 0.0031899872499623746, 0.010588451566381765, 0.0657579835808869, 0.32368470864989779, 0.59677886895287102},
  logsoftmax1 = {-0.0053299311742568342, -0.032724163163222096, -0.70616869641895086, -3.4742903768160369, -5.2458302024794152, -5.2370807356989717, -3.435959001662455, -0.68029304733527196, -0.031473962231691369, -0.0052833776638194132},
  lstm_out = {-0.24790223950765583, -0.097479136887481818, -0.31535896015364412, -0.2233132026498007, -0.01713592421170692, -0.42904796729407563, -0.23598639688059275, -0.14823472356405532, -0.27390531374983224, -0.32207843997223878, -0.026708568682250144, -0.46033351326844568, -0.236643347415605, -0.17742165443073368, -0.28900254892041349, -0.33278366486219418},
  lstm_h = {-0.236643347415605, -0.17742165443073368, -0.28900254892041349, -0.33278366486219418},
  lstm_c = {-1.4152467175318995, -1.3018285569888555, -1.0208383117193387, -1.3138220669178713},
  lstm_out_s = {-0.44273886129308876, -0.18574495559581775, -0.19884719887830565, -0.30609236252756633, -0.011620014728556094, -0.45205499401920041, -0.24413519112792134, -0.17935523079287605, -0.26424296259580116, -0.32959023399240189, -0.026142075398054129, -0.4808396117385707, -0.23565695739281342, -0.18038841854647303, -0.28581558940220797, -0.33767326442422158},
  lstm_c_s = {-1.3912649258371437, -1.3448452953004861, -1.0191668853169156, -1.3552415913339777},
  lstm2_out = {0.12626383812471231, 0.098411762672557787, 0.11172827530754229, 0.099969235570461626, 0.16458741272164409, 0.14823379520090346, 0.16437197198263392, 0.14527850470976755, 0.17584385206902547, 0.18472479399879529, 0.17779530405144592, 0.17532626237719801, 0.18505243723299314, 0.18904672248110771, 0.18116207441350513, 0.20550996331534446},
  lstm2_h = {0.26364260637127174, -0.14171002759894119, 0.095704048818385706, -0.18597374013495138, 0.18505243723299314, 0.18904672248110771, 0.18116207441350513, 0.20550996331534446},
  lstm2_c = {0.61645267090006273, -0.60486682841285844, 0.44733074958664609, -0.4190369868546075, 0.29591549310131959, 0.44394384904507689, 0.28028097722493284, 0.4408785863765653},
  gru_out = {0.20384306664023488, -0.066637792669634877, 0.38243045089726813, -0.17822240992109906, 0.18954396355521036, 0.2758987448747493, 0.45598341318786184, -0.22263272059604544, 0.42680385541207388, 0.064036407164317577, 0.43163328173906179, 0.13182115765407465, 0.45860994018625378, 0.0031532466902575162, 0.58853407568496863, -0.037133633436522873},
  gru_h = {0.45860994018625378, 0.0031532466902575162, 0.58853407568496863, -0.037133633436522873},
  gru_out_s = {0.24699149025897049, -0.5720561928895026, 0.17898832614123372, 0.09038020130331792, 0.22992073353691603, -0.011971742230378113, 0.29369792015697571, 0.019695394425573776, 0.49378291192981782, -0.17382268382053101, 0.27684321339110934, 0.3100981103263114, 0.52698221964179415, -0.21717418283853529, 0.47112081459990546, 0.1012570505780912},
  gru2_out = {0.19897224920983853, 0.13545339046629129, 0.2903685196184157, 0.15036030348705365, 0.41075926239034027, 0.17263613631281982, 0.42305044426421734, 0.2287163649209088, 0.55987642908503488, 0.21411224787071581, 0.57985733101581927, 0.25312442827239667, 0.62541975852026821, 0.24622112480256553, 0.68042658541047851, 0.28209342874503218},
  gru2_h = {0.048301227732934993, 0.041122495317920338, 0.32379498067276513, 0.081536470047744891, 0.62541975852026821, 0.24622112480256553, 0.68042658541047851, 0.28209342874503218},
  clip_total = {4.8846727786821962},
  clip_a = {0.043277502085395395, 0.56650864931002198, 0.82330192682231795, 0.69288344370261445, 0.23659105040711234, -0.33097381073199444},
  clip_b = {0.53959786229843643, 0.48992183345485246, 0.20982791109764154, -0.16895135650034626},
  clip1_total = {13.357418374056209},
  clip1_a = {0.0052753822606878996, 0.069055503092561352, 0.10035774179800244, 0.084460166402871531, 0.028839655021965532, -0.040344596747811254},
  clipinf_total = {2.6810408892583366},
  clipinf_b = {1.7571730193347592, 1.5954055556538826, 0.68329393024953911, -0.5501815073133528},
  bn_cma_rm = {0.12960639939498883, 0.07254253446367287, 0.059746719637560453},
  bn_cma_rv = {0.97451611918944769, 0.87027697504328405, 0.99025400900930638},
  conv_same = {1.3650558490723705, 0.019094496031922814, -0.73725436475422257, -0.88125437842573862, -1.2709036812558234, 0.76341532157950232, 2.017047207791419, 2.7715253471826751, 2.633896458624112, 2.5391738312158241, -0.79734974482761689, -0.65695154984737425, -1.2219441867661378, -0.53657962137173165, 0.87703574718521315, 2.1364055130845783, 1.2988026754442661, 0.83182350802975624, -0.025224890922972087, -0.93601737751347558, -0.33449486741059709, 0.70571078091044859, 1.4708813429529703, 2.0064187580869919, 2.5522160030394057, 0.89634995837560261, -0.44297062783888752, -1.1882815754280411, -1.3710322699497075, -1.7979839412658123, 0.1892482746054632, 1.4501451056621382, 2.2075497208277421, 2.1060881044838973, 2.0487581621838937, -1.266565922673395, -1.1636105838704327, -1.7726366092343189, -1.0755955959301069, 0.32188474345321205, 1.6471900140030376, 0.84242031670320461, 0.39591017171035114, -0.48286776395213549, -1.4147449922598123, -0.90109140339830496, 0.11995265033626082, 0.87415700035369792, 1.4355719280977182, 2.0138808663399508, 0.33251154607687444, -0.99865373075516839, -1.7320839459152868, -1.9533786615023401, -2.4171498919737981, -0.47925168288201242, 0.78748423431939596, 1.5469588301573172, 1.4817792217661345, 1.4619067949356168, -1.8284687341226373, -1.7630726763795761, -2.4154433858985782, -1.7075141588751943, -0.3277491599573884, 1.0619929216117749, 0.29096642156283009, -0.13456977438851109, -1.0340834991883137, -1.9859916754208311, -1.5607878621739006, -0.56006002925000109, 0.18232523259294059, 0.76898280866676183, 1.379149471681655, 0.92804195533352929, 2.1360731328531251, 2.8759616435235724, 2.6734929333225672, 2.464591338842594, -0.16205775239732467, -1.0850166975482214, -1.7060288880042322, -1.2485601642721176, -0.57905974362879442, 2.2322559166716442, 1.6534287576241673, 2.0472207260160005, 1.1095914299272356, -0.33931359790617888, -0.22746496577847897, 0.8417446182049253, 1.6639573972247201, 2.1124898662937128, 2.5606801035330702, 1.1435721250765771, 0.036922270947375435, -0.95919330299867067, -1.0091642959372402, -1.014532273270818, 0.35329961287488787, 1.5717884690044843, 2.3178915554866779, 2.1502937594789793, 1.9781055897670305, -0.62542707306671219, -1.5713617663357482, -2.2118371974822146, -1.7810938466550645, -1.1425948231367147, 1.6873548856122942, 1.1517736963428962, 1.5868604223583311, 0.62451520166577179, -0.81888844361608071, -0.79787620491435984, 0.25580379497524758, 1.0695308007658992, 1.5444487286625406, 2.0272767790995245, 0.68974266852232669, -0.41776538972007549, -1.416421048194656, -1.492833400955067, -1.5390084854307324, -0.31596115410766318, 0.91160747809970255, 1.6630814253879675, 1.5305440680212998, 1.3952640384527912, -1.1822080457424378, -2.1500487967482651, -2.8092632003951556, -2.4057323195447728, -1.7989567263623711, 1.0464268416417082, 0.55469727288999504, 1.0305867478426178, 0.044613850427895618, -1.3916561696045149, -1.4615040855776074, -0.42454520168027232, 0.37977584478664023, 0.88054218054639843, 1.3974620482205364, 0.14101432788067109, -0.96609953224716527, -1.9661659664726696, -2.0689332697506169, -2.1558632452438631},
  bilstm_names = "weight_ih_l0 weight_hh_l0 bias_ih_l0 bias_hh_l0 weight_ih_l0_reverse weight_hh_l0_reverse bias_ih_l0_reverse bias_hh_l0_reverse",
  bilstm_out = {-0.26062374342760658, -0.10525148413781761, -0.1578792724416111, -0.086766621880382172, -0.43542223274760761, -0.20232204752469898, 0.043482453596657936, -0.27118638191020156, -0.012713201622580104, -0.62801439482208721, 0.0053550668406762607, -0.039949382969668094, -0.24699331002182251, -0.19247415479430827, -0.14401939196543329, -0.078119754845859979, -0.37488615638587564, -0.39207628769430031, 0.027527025054218165, -0.26321945422321325, -0.032929644193225888, -0.64833484042623857, 0.0093666310943910976, -0.0050929797055561336, -0.24261871210686359, -0.27477074021043402, -0.20108673161734783, -0.076754208214484532, -0.39090798130492543, -0.40452071834027109, 0.068977840006393967, -0.23936137124433551},
  bilstm_h = {-0.24261871210686359, -0.27477074021043402, -0.39090798130492543, -0.40452071834027109, -0.1578792724416111, -0.086766621880382172, 0.043482453596657936, -0.27118638191020156},
  bilstm_c = {-1.4343096037563421, -0.89358442559512152, -1.049114644128561, -1.1446033608422301, -0.45929565914471732, -0.70377142603390053, 0.15300829246763026, -1.3150104880059124},
  bigru2_out = {-0.36980703962424688, -0.21289486869066035, 0.55719164299666146, 0.62490393619510232, 0.29446748979135273, 0.15862145630128011, 0.38063532601696426, 0.18935921562319524, -0.21706026361388053, -0.38783640802730845, 0.58640763008805863, 0.61308997528276454, 0.28677529728562262, -0.06473349511638643, 0.31293087590761048, 0.083057667849637862, -0.083060321915369162, -0.25181579623793326, 0.59549010373753275, 0.59116852509172613, 0.3128600714718125, -0.36702274194614959, 0.21761703703770041, -0.038316110541771642, -0.012546245175234755, -0.2541591113247389, 0.8144225292267957, 0.57878687392975448, 0.32982355652087875, -0.29989140856990548, 0.047330109282100713, -0.32972644416823305},
  bigru2_h = {-0.54679433705458047, 0.035742924646442423, -0.29420718072541741, -0.38450469109159502, -0.18490615055952708, -0.76509224645935348, -0.5729463522368955, -0.85499572783695543, -0.012546245175234755, -0.2541591113247389, 0.32982355652087875, -0.29989140856990548, 0.55719164299666146, 0.62490393619510232, 0.38063532601696426, 0.18935921562319524},
}

-- Linear
local lin = nn.Linear(3, 4, F64)
set(lin.weight, gen(2, 4, 3)); set(lin.bias, gen(3, 4))
T:near(lin(gen(1, 2, 3)), R.linear, TOL, "Linear forward")
local lin32 = nn.Linear(3, 4)
set(lin32.weight, gen(2, 4, 3):float()); set(lin32.bias, gen(3, 4):float())
T:near(lin32(gen(1, 2, 3):float()), R.linear, 1e-5, "Linear forward float32")
T:raises(function() lin(gen(1, 2, 5)) end, "Linear(3 -> 4): input {2,5} has 5 features in its last dim, expected 3")

-- Conv2d and pools
local x = gen(4, 2, 2, 5, 5)
local c = nn.Conv2d(2, 3, 3, { stride = 2, padding = 1, dtype = "float64" })
set(c.weight, gen(5, 3, 2, 3, 3)); set(c.bias, gen(6, 3))
local y = c(x)
T:eq(table.concat(y:shape(), ","), "2,3,3,3", "Conv2d stride 2 padding 1 shape")
T:near(y, R.conv_s2p1, TOL, "Conv2d stride 2 padding 1")
local c2 = nn.Conv2d(2, 4, { 3, 2 }, { dilation = { 2, 1 }, groups = 2, bias = false, dtype = "float64" })
set(c2.weight, gen(7, 4, 1, 3, 2))
T:near(c2(x), R.conv_d2g2, TOL, "Conv2d dilation (2,1), groups 2, no bias")
T:raises(function() c(gen(4, 2, 3, 5, 5)) end, "Conv2d(2 -> 3): expected input (N, 2, H, W), got {2,3,5,5}")
T:near(nn.MaxPool2d(2)(x), R.maxpool2, TOL, "MaxPool2d(2)")
T:near(nn.MaxPool2d(3, { stride = 2, padding = 1 })(x), R.maxpool3s2p1, TOL, "MaxPool2d(3, stride 2, padding 1)")
T:near(nn.AvgPool2d(2)(x), R.avgpool2, TOL, "AvgPool2d(2)")
T:near(nn.AvgPool2d(3, { stride = 2, padding = 1 })(x), R.avgpool3s2p1, TOL, "AvgPool2d(3, stride 2, padding 1)")

-- BatchNorm1d: batch statistics and running-stat updates (unbiased variance) in training,
-- running statistics in eval
local bn = nn.BatchNorm1d(3, F64)
set(bn.weight, gen(9, 3)); set(bn.bias, gen(10, 3))
T:near(bn(gen(8, 4, 3)), R.bn1_train, TOL, "BatchNorm1d training forward")
T:near({ bn.running_mean, bn.running_var }, { R.bn1_rm, R.bn1_rv }, TOL, "BatchNorm1d running stats after one batch")
bn(gen(11, 4, 3) * 2 + 0.5)
T:near({ bn.running_mean, bn.running_var }, { R.bn1_rm2, R.bn1_rv2 }, TOL, "BatchNorm1d running stats after two batches")
T:eq(bn.num_batches_tracked:item(), 2, "num_batches_tracked counts training batches")
bn:eval()
T:near(bn(gen(8, 4, 3)), R.bn1_eval, TOL, "BatchNorm1d eval uses running stats")
T:eq(bn.num_batches_tracked:item(), 2, "eval does not count batches")
local bnc = nn.BatchNorm1d(3, F64)
T:near(bnc(gen(12, 2, 3, 4)), R.bn1_3d, TOL, "BatchNorm1d on (N, C, L)")
T:near(bnc.running_var, R.bn1_3d_rv, TOL, "BatchNorm1d (N, C, L) running var")
T:raises(function() bnc(gen(1, 2, 4)) end, "BatchNorm1d(3): expected input (N, 3) or (N, 3, L), got {2,4}")

local bn2 = nn.BatchNorm2d(3, { momentum = 0.3, dtype = "float64" })
set(bn2.weight, gen(14, 3)); set(bn2.bias, gen(15, 3))
local xb = gen(13, 2, 3, 2, 2)
T:near(bn2(xb), R.bn2_train, TOL, "BatchNorm2d training forward")
T:near({ bn2.running_mean, bn2.running_var }, { R.bn2_rm, R.bn2_rv }, TOL, "BatchNorm2d running stats (momentum 0.3)")
bn2:eval()
T:near(bn2(xb), R.bn2_eval, TOL, "BatchNorm2d eval")

-- momentum = false: cumulative moving average (PyTorch's momentum=None)
local bncma = nn.BatchNorm1d(3, { momentum = false, dtype = "float64" })
bncma(gen(8, 4, 3)); bncma(gen(11, 4, 3) * 2 + 0.5); bncma(gen(12, 5, 3))
T:near({ bncma.running_mean, bncma.running_var }, { R.bn_cma_rm, R.bn_cma_rv }, TOL,
       "BatchNorm1d momentum = false: cumulative average of batch stats")

-- Conv2d padding "same"
local cs = nn.Conv2d(2, 3, 3, { padding = "same", dilation = 2, dtype = "float64" })
set(cs.weight, gen(5, 3, 2, 3, 3)); set(cs.bias, gen(6, 3))
T:near(cs(x), R.conv_same, TOL, "Conv2d padding \"same\" (dilation 2)")
T:eq(table.concat(cs(x):shape(), ","), "2,3,5,5", "padding \"same\" keeps H and W")
T:raises(function() nn.Conv2d(1, 1, 2, { padding = "same" }) end, "needs asymmetric padding (unsupported)")

-- LayerNorm
local ln = nn.LayerNorm(4, F64)
set(ln.weight, gen(17, 4)); set(ln.bias, gen(18, 4))
T:near(ln(gen(16, 2, 3, 4)), R.ln, TOL, "LayerNorm(4)")
local ln2 = nn.LayerNorm({ 3, 4 }, { elementwise_affine = false, eps = 1e-3 })
T:eq(#ln2:parameters(), 0, "LayerNorm without affine has no parameters")
T:near(ln2(gen(16, 2, 3, 4)), R.ln2, TOL, "LayerNorm({3,4}, eps 1e-3, no affine)")
T:raises(function() ln(gen(16, 2, 3)) end, "LayerNorm({4}): input {2,3} does not end with the normalized shape")

-- Embedding (1-based indices)
local emb = nn.Embedding(5, 3, F64)
set(emb.weight, gen(19, 5, 3))
local e = emb(mg.tensor({ { 5, 1 }, { 3, 3 } }))
T:eq(table.concat(e:shape(), ","), "2,2,3", "Embedding output shape")
T:near(e, R.emb, TOL, "Embedding rows")

-- Embedding padding_idx: row zeroed at init, no gradient reaches it (PyTorch semantics)
local pe = nn.Embedding(4, 2, { padding_idx = 2, dtype = "float64" })
T:near(pe.weight:select(1, 2), { 0, 0 }, 0, "padding row starts at zero")
set(pe.weight, gen(82, 4, 2))
local pidx = mg.tensor({ { 2, 1 }, { 3, 2 }, { 1, 1 } })
local po = pe(pidx)
T:near(po:select(1, 1):select(1, 1), gen(82, 4, 2):select(1, 2), 0, "padding positions still read the row")
po:sum():backward()
T:near(pe.weight.grad, { { 3, 3 }, { 0, 0 }, { 1, 1 }, { 0, 0 } }, 0, "gradient counts uses, none for the padding row")
T:eq(tostring(nn.Embedding(5, 3, { padding_idx = -1 })):match("^[^\n]*padding_idx=%d"), "Embedding(5, 3, padding_idx=5",
     "negative padding_idx counts from the end")
T:raises(function() nn.Embedding(5, 3, { padding_idx = 6 }) end, "Embedding: padding_idx must be an index in 1..5")

-- activations and friends
local xa = gen(20, 2, 5) * 3
T:near(nn.ReLU()(xa), R.relu, TOL, "ReLU")
T:near(nn.LeakyReLU(0.2)(xa), R.leaky, TOL, "LeakyReLU(0.2)")
T:near(nn.Sigmoid()(xa), R.sigmoid, TOL, "Sigmoid")
T:near(nn.Tanh()(xa), R.tanh, TOL, "Tanh")
T:near(nn.GELU()(xa), R.gelu, TOL, "GELU (exact)")
T:near(nn.Softmax(-1)(xa), R.softmax, TOL, "Softmax(-1)")
T:near(nn.LogSoftmax(1)(xa), R.logsoftmax1, TOL, "LogSoftmax(1)")
T:ok(rawequal(nn.Identity()(xa), xa), "Identity returns its input")
-- SiLU and Softplus against their closed forms, evaluated here in Lua
local silu, softplus = {}, {}
for i, v in ipairs(xa:contiguous():view(-1):totable()) do
  silu[i] = v / (1 + math.exp(-v)); softplus[i] = math.log(1 + math.exp(v))
end
T:near(nn.SiLU()(xa), silu, TOL, "SiLU = x * sigmoid(x)")
T:near(nn.Softplus()(xa), softplus, TOL, "Softplus = log(1 + exp(x))")
local fl = nn.Flatten()(gen(1, 2, 3, 4, 5))
T:eq(table.concat(fl:shape(), ","), "2,60", "Flatten keeps the batch dim")
T:eq(table.concat(nn.Flatten(3)(gen(1, 2, 3, 4, 5)):shape(), ","), "2,3,20", "Flatten(3)")
local seq = nn.Sequential(nn.Flatten(), lin32, nn.ReLU())
T:eq(table.concat(seq(gen(1, 2, 3, 1):float()):shape(), ","), "2,4", "Sequential chains")
T:near(seq(gen(1, 2, 3, 1):float()), nn.ReLU()(lin32(gen(1, 2, 3):float())), 0, "Sequential = composition")

-- Dropout: identity in eval; in training zeros about p and scales survivors by 1/(1-p)
local d = nn.Dropout(0.25)
local ones = mg.ones(4000, F64)
mg.manual_seed(7)
local dv = flat(d(ones))
local zeros, okscale = 0, true
for _, v in ipairs(dv) do
  if v == 0 then zeros = zeros + 1 else okscale = okscale and math.abs(v - 1 / 0.75) < 1e-12 end
end
T:ok(zeros > 850 and zeros < 1150, ("Dropout(0.25) zeroes about a quarter (%d of 4000)"):format(zeros))
T:ok(okscale, "survivors scaled by 1/(1-p)")
d:eval()
T:near(d(xa), xa, 0, "Dropout in eval is the identity")

-- LSTM / GRU
local xs = gen(21, 4, 2, 3)
local function fill(m, k0)
  local k = k0
  for _, p in m:named_parameters() do set(p, gen(k, table.unpack(p:shape()))); k = k + 1 end
end
local lstm = nn.LSTM(3, 2, F64)
fill(lstm, 22)
local o, st = lstm(xs)
T:eq(table.concat(o:shape(), ",") .. " " .. table.concat(st[1]:shape(), ","), "4,2,2 1,2,2", "LSTM output and h_n shapes")
T:near({ o, st[1], st[2] }, { R.lstm_out, R.lstm_h, R.lstm_c }, TOL, "LSTM output, h_n, c_n")
o, st = lstm(xs, { gen(30, 1, 2, 2), gen(31, 1, 2, 2) })
T:near({ o, st[2] }, { R.lstm_out_s, R.lstm_c_s }, TOL, "LSTM from a given (h0, c0)")
local bf = nn.LSTM(3, 2, { batch_first = true, dtype = "float64" })
bf:load_state_dict(lstm:state_dict())
local ob = bf(xs:transpose(1, 2))
T:near(ob:transpose(1, 2), R.lstm_out, TOL, "LSTM batch_first")
local ou, stu = lstm(xs:select(2, 2))
T:eq(table.concat(ou:shape(), ",") .. " " .. table.concat(stu[1]:shape(), ","), "4,2 1,2", "unbatched LSTM shapes")
T:near(ou, lstm(xs):select(2, 2), TOL, "unbatched LSTM input (seq, feature) = one batch column")
local lstm2 = nn.LSTM(3, 2, { num_layers = 2, dtype = "float64" })
fill(lstm2, 40)
o, st = lstm2(xs)
T:near({ o, st[1], st[2] }, { R.lstm2_out, R.lstm2_h, R.lstm2_c }, TOL, "two-layer LSTM")
T:raises(function() lstm(xs, { gen(30, 1, 3, 2) }) end, "LSTM: initial state 1 must have shape {1,2,2}, got {1,3,2}")

local gru = nn.GRU(3, 2, F64)
fill(gru, 50)
local og, hg = gru(xs)
T:near({ og, hg }, { R.gru_out, R.gru_h }, TOL, "GRU output, h_n")
T:near(gru(xs, gen(32, 1, 2, 2)), R.gru_out_s, TOL, "GRU from a given h0")
local gru2 = nn.GRU(3, 2, { num_layers = 2, dtype = "float64" })
fill(gru2, 60)
og, hg = gru2(xs)
T:near({ og, hg }, { R.gru2_out, R.gru2_h }, TOL, "two-layer GRU")

-- loss modules wrap the loss plugins
local logits, labels = gen(80, 4, 3), mg.tensor({ 1, 3, 2, 3 })
T:near(nn.CrossEntropyLoss()(logits, labels), mg.loss("cross_entropy")(logits, labels), 0, "CrossEntropyLoss = mg.loss(\"cross_entropy\")")
T:near(nn.MSELoss({ reduction = "sum" })(logits, gen(81, 4, 3)), mg.loss("mse", { reduction = "sum" })(logits, gen(81, 4, 3)), 0,
       "MSELoss with options")
T:eq(tostring(nn.SmoothL1Loss({ beta = 0.5, reduction = "sum" })), "SmoothL1Loss(beta=0.5, reduction=sum)", "loss module repr")
T:eq(#nn.NLLLoss():parameters(), 0, "loss modules have no parameters")

-- bidirectional RNNs: PyTorch's parameter names and order, outputs (seq, batch, 2*hidden),
-- states (layers*2, batch, hidden) ordered layer 1 forward, layer 1 reverse, ...
local bl = nn.LSTM(3, 2, { bidirectional = true, dtype = "float64" })
local bnames = {}
for n in bl:named_parameters() do bnames[#bnames + 1] = n end
T:eq(table.concat(bnames, " "), R.bilstm_names, "bidirectional LSTM parameter names")
fill(bl, 90)
o, st = bl(xs)
T:eq(table.concat(o:shape(), ",") .. " " .. table.concat(st[1]:shape(), ","), "4,2,4 2,2,2", "bidirectional shapes")
T:near({ o, st[1], st[2] }, { R.bilstm_out, R.bilstm_h, R.bilstm_c }, TOL, "bidirectional LSTM")
local bg = nn.GRU(3, 2, { num_layers = 2, bidirectional = true, dtype = "float64" })
fill(bg, 110)
og, hg = bg(xs, gen(33, 4, 2, 2))
T:near({ og, hg }, { R.bigru2_out, R.bigru2_h }, TOL, "two-layer bidirectional GRU from a given h0")
local bgb = nn.GRU(3, 2, { num_layers = 2, bidirectional = true, batch_first = true, dtype = "float64" })
bgb:load_state_dict(bg:state_dict())
local ogb = bgb(xs:transpose(1, 2), gen(33, 4, 2, 2))
T:near(ogb:transpose(1, 2), R.bigru2_out, TOL, "bidirectional GRU batch_first")
T:eq(table.concat(bg.weight_ih_l1_reverse:shape(), ","), "6,4", "layer 2 input weight takes both directions")
T:raises(function() bg(xs, gen(33, 2, 2, 2)) end, "GRU: initial state 1 must have shape {4,2,2}, got {2,2,2}")

-- clip_grad_norm
local a = gen(70, 3, 2):requires_grad_(true)
local b = gen(71, 4):requires_grad_(true)
local function grads() a.grad = gen(72, 3, 2) * 3; b.grad = gen(73, 4) * 2 end
grads()
local tot = nn.clip_grad_norm({ a, b }, 1.5)
T:near({ tot, a.grad, b.grad }, { R.clip_total, R.clip_a, R.clip_b }, TOL, "clip_grad_norm L2: total and scaled grads")
grads()
tot = nn.clip_grad_norm({ a, b }, 0.5, 1)
T:near({ tot, a.grad }, { R.clip1_total, R.clip1_a }, TOL, "clip_grad_norm L1")
grads()
tot = nn.clip_grad_norm({ a, b }, 100, math.huge)
T:near({ tot, b.grad }, { R.clipinf_total, R.clipinf_b }, TOL, "clip_grad_norm inf norm, below max: unchanged")
T:eq(nn.clip_grad_norm({ mg.zeros(2, { requires_grad = true }) }, 1), 0, "no gradients: total 0")
local nf = mg.zeros(2, F64):requires_grad_(true)
nf.grad = mg.tensor({ 1, 0 / 0 }, F64)
local tn = nn.clip_grad_norm({ nf }, 1, math.huge)
T:ok(tn ~= tn, "inf norm with a NaN gradient is NaN (as PyTorch)")
nf.grad = mg.tensor({ 3, math.huge }, F64)
T:raises(function() nn.clip_grad_norm({ nf }, 1, 2, true) end,
         "clip_grad_norm: the total norm of order 2 of the gradients is non-finite (inf)", "error_if_nonfinite")
T:raises(function() nn.clip_grad_norm({ a, 3 }, 1) end, "clip_grad_norm: element 2 is a number, expected a tensor")
T:done()

--[==[ generator (python3, torch 1.13):
# Reference values for tests/lua/nn_layers.lua, produced with torch 1.13 in float64.
import math, torch
torch.set_default_dtype(torch.float64)
import torch.nn as nn, torch.nn.functional as F
def gen(k, *shape):
    n = 1
    for s in shape: n *= s
    return torch.tensor([math.sin(k * 1.3 + 0.7 * i) * 0.9 for i in range(1, n + 1)]).view(*shape)
def out(name, t):
    v = t.detach().contiguous().view(-1).tolist()
    print("  %s = {%s}," % (name, ", ".join("%.17g" % x for x in v)))
print("local R = {")
# Linear
x = gen(1, 2, 3); lin = nn.Linear(3, 4)
with torch.no_grad(): lin.weight.copy_(gen(2, 4, 3)); lin.bias.copy_(gen(3, 4))
out("linear", lin(x))
# Conv2d
x = gen(4, 2, 2, 5, 5)
c = nn.Conv2d(2, 3, 3, stride=2, padding=1)
with torch.no_grad(): c.weight.copy_(gen(5, 3, 2, 3, 3)); c.bias.copy_(gen(6, 3))
out("conv_s2p1", c(x))
c2 = nn.Conv2d(2, 4, (3, 2), dilation=(2, 1), groups=2, bias=False)
with torch.no_grad(): c2.weight.copy_(gen(7, 4, 1, 3, 2))
out("conv_d2g2", c2(x))
# pools
out("maxpool2", nn.MaxPool2d(2)(x))
out("maxpool3s2p1", nn.MaxPool2d(3, stride=2, padding=1)(x))
out("avgpool2", nn.AvgPool2d(2)(x))
out("avgpool3s2p1", nn.AvgPool2d(3, stride=2, padding=1)(x))
# BatchNorm1d
x = gen(8, 4, 3)
bn = nn.BatchNorm1d(3)
with torch.no_grad(): bn.weight.copy_(gen(9, 3)); bn.bias.copy_(gen(10, 3))
out("bn1_train", bn(x)); out("bn1_rm", bn.running_mean); out("bn1_rv", bn.running_var)
x2 = gen(11, 4, 3) * 2 + 0.5
bn(x2); out("bn1_rm2", bn.running_mean); out("bn1_rv2", bn.running_var)
bn.eval(); out("bn1_eval", bn(x))
x3 = gen(12, 2, 3, 4)
bnc = nn.BatchNorm1d(3); out("bn1_3d", bnc(x3)); out("bn1_3d_rv", bnc.running_var)
# BatchNorm2d
x = gen(13, 2, 3, 2, 2)
bn2 = nn.BatchNorm2d(3, momentum=0.3)
with torch.no_grad(): bn2.weight.copy_(gen(14, 3)); bn2.bias.copy_(gen(15, 3))
out("bn2_train", bn2(x)); out("bn2_rm", bn2.running_mean); out("bn2_rv", bn2.running_var)
bn2.eval(); out("bn2_eval", bn2(x))
# LayerNorm
x = gen(16, 2, 3, 4)
ln = nn.LayerNorm(4)
with torch.no_grad(): ln.weight.copy_(gen(17, 4)); ln.bias.copy_(gen(18, 4))
out("ln", ln(x))
ln2 = nn.LayerNorm([3, 4], elementwise_affine=False, eps=1e-3)
out("ln2", ln2(x))
# Embedding
emb = nn.Embedding(5, 3)
with torch.no_grad(): emb.weight.copy_(gen(19, 5, 3))
out("emb", emb(torch.tensor([[4, 0], [2, 2]])))
# activations
x = gen(20, 2, 5) * 3
out("relu", F.relu(x)); out("leaky", F.leaky_relu(x, 0.2)); out("sigmoid", torch.sigmoid(x))
out("tanh", torch.tanh(x)); out("gelu", F.gelu(x)); out("softmax", F.softmax(x, -1))
out("logsoftmax1", F.log_softmax(x, 0))
# LSTM
x = gen(21, 4, 2, 3)
lstm = nn.LSTM(3, 2)
with torch.no_grad():
    for k, (n, p) in enumerate(lstm.named_parameters()): p.copy_(gen(22 + k, *p.shape))
o, (h, c) = lstm(x); out("lstm_out", o); out("lstm_h", h); out("lstm_c", c)
h0 = gen(30, 1, 2, 2); c0 = gen(31, 1, 2, 2)
o, (h, c) = lstm(x, (h0, c0)); out("lstm_out_s", o); out("lstm_c_s", c)
lstm2 = nn.LSTM(3, 2, num_layers=2)
with torch.no_grad():
    for k, (n, p) in enumerate(lstm2.named_parameters()): p.copy_(gen(40 + k, *p.shape))
o, (h, c) = lstm2(x); out("lstm2_out", o); out("lstm2_h", h); out("lstm2_c", c)
# GRU
gru = nn.GRU(3, 2)
with torch.no_grad():
    for k, (n, p) in enumerate(gru.named_parameters()): p.copy_(gen(50 + k, *p.shape))
o, h = gru(x); out("gru_out", o); out("gru_h", h)
o, h = gru(x, gen(32, 1, 2, 2)); out("gru_out_s", o)
gru2 = nn.GRU(3, 2, num_layers=2)
with torch.no_grad():
    for k, (n, p) in enumerate(gru2.named_parameters()): p.copy_(gen(60 + k, *p.shape))
o, h = gru2(x); out("gru2_out", o); out("gru2_h", h)
# clip_grad_norm
a = gen(70, 3, 2).requires_grad_(); b = gen(71, 4).requires_grad_()
a.grad = gen(72, 3, 2) * 3; b.grad = gen(73, 4) * 2
tot = torch.nn.utils.clip_grad_norm_([a, b], 1.5)
out("clip_total", tot); out("clip_a", a.grad); out("clip_b", b.grad)
a.grad = gen(72, 3, 2) * 3; b.grad = gen(73, 4) * 2
tot = torch.nn.utils.clip_grad_norm_([a, b], 0.5, norm_type=1)
out("clip1_total", tot); out("clip1_a", a.grad)
a.grad = gen(72, 3, 2) * 3; b.grad = gen(73, 4) * 2
tot = torch.nn.utils.clip_grad_norm_([a, b], 100.0, norm_type=float("inf"))
out("clipinf_total", tot); out("clipinf_b", b.grad)
print("}")
# second batch of references (same gen and out helpers):
bn = nn.BatchNorm1d(3, momentum=None)
bn(gen(8, 4, 3)); bn(gen(11, 4, 3) * 2 + 0.5); bn(gen(12, 5, 3))
out("bn_cma_rm", bn.running_mean); out("bn_cma_rv", bn.running_var)
c = nn.Conv2d(2, 3, 3, padding="same", dilation=2)
with torch.no_grad(): c.weight.copy_(gen(5, 3, 2, 3, 3)); c.bias.copy_(gen(6, 3))
out("conv_same", c(gen(4, 2, 2, 5, 5)))
# third batch:
x = gen(21, 4, 2, 3)
bl = nn.LSTM(3, 2, bidirectional=True)
print("  bilstm_names = \"%s\"," % " ".join(n for n, _ in bl.named_parameters()))
with torch.no_grad():
    for k, (n, p) in enumerate(bl.named_parameters()): p.copy_(gen(90 + k, *p.shape))
o, (h, c) = bl(x); out("bilstm_out", o); out("bilstm_h", h); out("bilstm_c", c)
bg = nn.GRU(3, 2, num_layers=2, bidirectional=True)
with torch.no_grad():
    for k, (n, p) in enumerate(bg.named_parameters()): p.copy_(gen(110 + k, *p.shape))
o, h = bg(x, gen(33, 4, 2, 2)); out("bigru2_out", o); out("bigru2_h", h)
]==]
