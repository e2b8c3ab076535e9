"""The TensorFlow operations an uploaded SavedModel may contain: an allow-list, one
table of families, each with the reason it is safe. A graph op is C++ code the
model's author picks by name; a deny-list must foresee every op that reads or
writes a file, runs Python, talks to the network or reaches another process
(`PrintV2` to `file://...`, `WriteFile`, `PyFunc`, readers, summaries, datasets,
lookup tables initialised from files, ...), and every op TensorFlow adds later.
An allow-list names what ordinary models compute with, and refuses the rest by
name. An op missing here refuses a harmless model with a clear message, which is
the cheap way to be wrong; adding it is one line, after checking it does no I/O.

Nothing here imports TensorFlow: the table is plain data, checked against
TensorFlow's op registry by the tests (a misspelt name would allow nothing)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """Ops allowed for one reason."""
    name: str
    why: str
    ops: frozenset[str]


def _ops(text: str) -> frozenset[str]:
    return frozenset(text.split())


FAMILIES: tuple[Family, ...] = (
    Family("array", "shape, slice, gather and fill tensors in memory; no state, no I/O", _ops("""
        Const Identity IdentityN Placeholder PlaceholderWithDefault Reshape Shape ShapeN Size Rank ExpandDims
        Squeeze Pack Unpack Concat ConcatV2 ConcatOffset Split SplitV Slice StridedSlice Transpose
        ConjugateTranspose Tile Fill ZerosLike OnesLike Gather GatherV2 GatherNd ScatterNd TensorScatterUpdate
        TensorScatterAdd TensorScatterSub TensorScatterMax TensorScatterMin Pad PadV2 MirrorPad Reverse ReverseV2
        ReverseSequence Roll Where Select SelectV2 BroadcastTo BroadcastArgs BroadcastGradientArgs Cast Bitcast
        OneHot Range LinSpace Unique UniqueV2 TopKV2 Empty EnsureShape StopGradient PreventGradient CheckNumerics
        CheckNumericsV2 Snapshot MatrixBandPart MatrixDiag MatrixDiagV2 MatrixDiagV3 MatrixDiagPart
        MatrixDiagPartV2 MatrixDiagPartV3 MatrixSetDiag MatrixSetDiagV2 MatrixSetDiagV3 Diag DiagPart
        InvertPermutation SpaceToBatch SpaceToBatchND BatchToSpace BatchToSpaceND SpaceToDepth DepthToSpace
        ExtractImagePatches ExtractVolumePatches DynamicPartition DynamicStitch ParallelDynamicStitch Bucketize
        UpperBound LowerBound Cumsum Cumprod CumulativeLogsumexp Bincount DenseBincount ClipByValue
        SegmentSum SegmentMean SegmentMax SegmentMin SegmentProd UnsortedSegmentSum UnsortedSegmentMax
        UnsortedSegmentMin UnsortedSegmentProd Einsum""")),
    Family("math", "element-wise arithmetic, comparisons, reductions and linear algebra on tensors", _ops("""
        Add AddV2 AddN Sub Mul MulNoNan Div DivNoNan RealDiv FloorDiv FloorMod TruncateDiv TruncateMod Mod Pow
        Neg Abs Sign Square Sqrt Rsqrt Exp Expm1 Log Log1p Sin Cos Tan Asin Acos Atan Atan2 Sinh Cosh Tanh Asinh
        Acosh Atanh Erf Erfc Erfinv Ndtri Lgamma Digamma Sigmoid Reciprocal Inv Floor Ceil Round Rint Maximum
        Minimum SquaredDifference Xlogy Xdivy Xlog1py IsNan IsInf IsFinite Equal NotEqual Less LessEqual Greater
        GreaterEqual LogicalAnd LogicalOr LogicalNot ApproximateEqual Sum Mean Max Min Prod All Any ArgMax
        ArgMin EuclideanNorm MatMul BatchMatMul BatchMatMulV2 BatchMatMulV3 Cross Cholesky MatrixInverse
        MatrixDeterminant LogMatrixDeterminant MatrixSolve MatrixTriangularSolve Qr Svd SelfAdjointEigV2
        BitwiseAnd BitwiseOr BitwiseXor Invert LeftShift RightShift PopulationCount Complex Real Imag ComplexAbs
        Conj Angle FFT IFFT RFFT IRFFT FFT2D IFFT2D RFFT2D IRFFT2D SoftmaxCrossEntropyWithLogits
        SparseSoftmaxCrossEntropyWithLogits L2Loss InTopKV2""")),
    Family("nn", "the kernels of Keras layers (dense, convolution, pooling, normalisation, activations, "
           "resizing, quantisation): arithmetic on tensors", _ops("""
        BiasAdd BiasAddV1 Conv Conv2D Conv3D Conv2DBackpropInput Conv3DBackpropInputV2 DepthwiseConv2dNative
        DepthwiseConv2dNativeBackpropInput Dilation2D MaxPool MaxPoolV2 MaxPool3D MaxPoolWithArgmax AvgPool
        AvgPool3D FractionalMaxPool FractionalAvgPool FusedBatchNorm FusedBatchNormV2 FusedBatchNormV3 Relu Relu6
        LeakyRelu Elu Selu Softplus Softsign Softmax LogSoftmax LRN ResizeBilinear ResizeNearestNeighbor
        ResizeBicubic ResizeArea ScaleAndTranslate CropAndResize QuantizeAndDequantizeV2 QuantizeAndDequantizeV3
        QuantizeAndDequantizeV4 FakeQuantWithMinMaxArgs FakeQuantWithMinMaxVars
        FakeQuantWithMinMaxVarsPerChannel CudnnRNN CudnnRNNV2 CudnnRNNV3 CudnnRNNParamsToCanonical
        CudnnRNNCanonicalToParams""")),
    Family("random", "random numbers (dropout, noise and sampling layers); TensorFlow's generators, no state "
           "outside the model", _ops("""
        RandomUniform RandomUniformInt RandomStandardNormal TruncatedNormal Multinomial RandomShuffle
        StatelessRandomUniform StatelessRandomUniformV2 StatelessRandomUniformInt StatelessRandomUniformIntV2
        StatelessRandomUniformFullInt StatelessRandomUniformFullIntV2 StatelessRandomNormal StatelessRandomNormalV2
        StatelessTruncatedNormal StatelessTruncatedNormalV2 StatelessMultinomial StatelessRandomGetKeyCounter
        StatelessRandomGetKeyCounterAlg StatelessRandomGetAlg RngReadAndSkip RngSkip""")),
    Family("control", "tf.function's control flow and calls (the called functions are checked too), and "
           "Assert, which fails a call", _ops("""
        NoOp If StatelessIf While StatelessWhile Case StatelessCase PartitionedCall StatefulPartitionedCall
        Switch Merge Enter Exit NextIteration LoopCond ControlTrigger Assert""")),
    Family("lists", "TensorList and TensorArray: the in-memory lists loops and RNN layers accumulate into", _ops("""
        TensorListReserve TensorListFromTensor TensorListStack TensorListGetItem TensorListSetItem
        TensorListLength TensorListElementShape TensorListPushBack TensorListPopBack EmptyTensorList
        TensorListConcatV2 TensorListSplit TensorListGather TensorListScatterIntoExistingList TensorListResize
        TensorArrayV3 TensorArrayReadV3 TensorArrayWriteV3 TensorArrayGatherV3 TensorArrayScatterV3
        TensorArraySizeV3 TensorArrayConcatV3 TensorArraySplitV3 TensorArrayCloseV3""")),
    Family("variables", "the model's own variables (weights, BatchNormalization statistics, seed state): "
           "handles, reads and in-memory assignments; they are filled from the variables/ directory by "
           "TensorFlow's loader, not by ops of the model", _ops("""
        VarHandleOp ReadVariableOp AssignVariableOp AssignAddVariableOp AssignSubVariableOp VarIsInitializedOp
        ResourceGather VariableShape DestroyResourceOp""")),
)

ALLOWED: frozenset[str] = frozenset().union(*(f.ops for f in FAMILIES))

#: What TensorFlow puts in the save and restore functions a SavedModel's `saver_def`
#: names (`__inference__traced_save_*`, `__inference__traced_restore_*`). They write and
#: read checkpoints, so they are allowed nowhere else; TensorFlow 2's loader restores
#: variables with its own Python code, never with them, and dodas removes them from the
#: stored model before loading it.
CHECKPOINT: frozenset[str] = _ops("""
    SaveV2 RestoreV2 MergeV2Checkpoints ShardedFilename StaticRegexFullMatch StringJoin DisableCopyOnRead""")
